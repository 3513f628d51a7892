"""Unit tests of stream.pipeline without Kafka: routing, dead letters, credits and batches."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2

from stream.engine.awards import award_id
from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.engine.state import UserState
from stream.events import Login
from stream.pipeline import Batch, Output, Pipeline, Record, Topics, partition_for
from stream.rules import load_rules

TZ = "Asia/Shanghai"
VERSION = "2026-11-23.1"
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # 2026-11-23 00:00 in Shanghai
NOW = D0 + 12 * HOUR
PARTITIONS = 4

TOPICS = Topics(
    sources={
        "src.messages": "message",
        "src.likes": "like",
        "src.logins": "login",
        "src.activities": "activity",
        "src.members": "member",
    },
    routed="int.routed",
    points="out.points",
    badges="out.badges",
    deadletter="out.dead",
)

_offsets = itertools.count(100)


def part(user: str) -> int:
    return partition_for(user.encode(), PARTITIONS)


def other_part(user: str) -> int:
    return (part(user) + 1) % PARTITIONS


def message(event_id: str, user: str = "u1", ts: int = NOW, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "team_id": "t1", "kind": "text", "ts": ts, **extra}


def like(event_id: str, user: str, target: str, ts: int = NOW) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "team_id": "t1", "target_user_id": target, "ts": ts}


def activity(event_id: str, user: str, kind: str, ts: int = NOW, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "team_id": "t1", "type": kind, "ts": ts, **extra}


def record(
    topic: str,
    doc: dict[str, Any] | None,
    *,
    user: str | None = None,
    partition: int | None = None,
    value: bytes | None = None,
    key: bytes | None = None,
) -> Record:
    """An input record of ``user`` (the doc's user_id by default), on the user's partition by default."""
    user = user or (doc or {}).get("user_id", "u1")
    assert user is not None
    raw = value if value is not None else (None if doc is None else orjson.dumps(doc))
    return Record(
        topic=topic,
        partition=part(user) if partition is None else partition,
        offset=next(_offsets),
        key=user.encode() if key is None else key,
        value=raw,
        timestamp_ms=NOW - 5,
    )


def fed_back(output: Output, partition: int | None = None) -> Record:
    """The record a consumer of ``output``'s topic sees, on the partition of its key by default."""
    assert output.key is not None
    return Record(
        topic=output.topic,
        partition=partition_for(output.key, PARTITIONS) if partition is None else partition,
        offset=next(_offsets),
        key=output.key,
        value=output.value,
        timestamp_ms=output.timestamp_ms or NOW,
    )


class Worker:
    """A pipeline over an in-memory store; ``flush`` stores a batch's states as the agent would."""

    def __init__(self, store: dict[bytes, bytes] | None = None, cache_size: int = 100_000) -> None:
        self.store: dict[bytes, bytes] = {} if store is None else store
        self.loads: list[bytes] = []
        self.pipeline = Pipeline(
            Engine(load_rules(), Calendar(TZ)),
            TOPICS,
            PARTITIONS,
            lambda: NOW,
            HOUR,
            self.load,
            cache_size=cache_size,
        )

    def load(self, record: Record, user: bytes) -> bytes | None:
        assert record.partition == partition_for(user, PARTITIONS)
        self.loads.append(user)
        return self.store.get(user)

    def run(self, *records: Record) -> Batch:
        batch = self.pipeline.run(records)
        for user, (_, raw) in batch.states.items():
            self.store[user] = raw
        return batch

    def state(self, user: str) -> UserState:
        return UserState.decode(self.store.get(user.encode()))


def values(batch: Batch, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(out.value) for out in batch.outputs if out.topic == topic]


def one_output(batch: Batch, topic: str) -> Output:
    [output] = [out for out in batch.outputs if out.topic == topic]
    return output


# --- applying -----------------------------------------------------------------------------------


def test_partition_for_is_murmur2_and_in_range() -> None:
    for i in range(200):
        key = f"user-{i}".encode()
        assert partition_for(key, PARTITIONS) == (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        assert 0 <= partition_for(key, 7) < 7


def test_event_on_its_users_partition_is_applied() -> None:
    worker = Worker()
    rec = record("src.messages", message("m1", reply_to_user_id="u2"))
    batch = worker.run(rec)
    assert batch.records == [rec]
    assert [out.topic for out in batch.outputs] == ["out.points", "out.points"]
    assert all(out.key == b"u1" and out.source is rec and out.timestamp_ms is None for out in batch.outputs)
    assert values(batch, "out.points") == [
        {
            "award_id": award_id("message_text", "u1", "m1"),
            "user_id": "u1",
            "team_id": "t1",
            "points": 2,
            "rule": "message_text",
            "status": "granted",
            "period": "2026-11-23",
            "source_event_id": "m1",
            "rules_version": VERSION,
            "ts": NOW,
        },
        {
            "award_id": award_id("reply", "u1", "m1"),
            "user_id": "u1",
            "team_id": "t1",
            "points": 3,
            "rule": "reply",
            "status": "granted",
            "period": "2026-11-23",
            "source_event_id": "m1",
            "rules_version": VERSION,
            "ts": NOW,
        },
    ]
    assert batch.outcomes == [("src.messages", "applied", None)]
    assert [(out, rule, kind, points) for out, rule, kind, points in batch.awards] == [
        (batch.outputs[0], "message_text", "points", 2),
        (batch.outputs[1], "reply", "points", 3),
    ]
    assert batch.deadletters == []
    assert list(batch.states) == [b"u1"]
    state_record, raw = batch.states[b"u1"]
    assert state_record is rec
    assert UserState.decode(raw).doc["points"] == 5


def test_each_user_state_is_loaded_once_and_cached() -> None:
    worker = Worker()
    worker.run(*(record("src.messages", message(f"m{i}")) for i in range(3)))
    worker.run(record("src.logins", {"event_id": "in1", "user_id": "u1", "team_id": "t1", "ts": NOW}))
    assert worker.loads == [b"u1"]
    assert worker.state("u1").doc["points"] == 11
    worker.pipeline.forget()
    worker.run(record("src.messages", message("m9")))
    assert worker.loads == [b"u1", b"u1"]
    assert worker.state("u1").doc["points"] == 13


def test_stored_state_is_the_starting_point() -> None:
    first = Worker()
    rec = record("src.messages", message("m1"))
    first.run(rec)
    restarted = Worker(dict(first.store))
    batch = restarted.run(rec)
    assert batch.outputs == []
    assert batch.outcomes == [("src.messages", "duplicate", None)]
    assert batch.states == {}


def test_level_badge_goes_to_the_badges_topic() -> None:
    state = UserState()
    state.doc["points"] = 998
    worker = Worker({b"u1": state.encode()})
    batch = worker.run(record("src.messages", message("m1")))
    badge = one_output(batch, "out.badges")
    assert badge.key == b"u1"
    assert orjson.loads(badge.value) == {
        "award_id": award_id("badge", "u1", "level", "communicator"),
        "user_id": "u1",
        "team_id": "t1",
        "badge": "communicator",
        "kind": "level",
        "source_event_id": "m1",
        "rules_version": VERSION,
        "ts": NOW,
        "level": "communicator",
        "period": "lifetime",
    }
    assert (badge, "communicator", "level", 0) in batch.awards


def test_ignored_event_is_reported_with_its_reason() -> None:
    batch = Worker().run(record("src.likes", like("l1", "u1", "u1")))
    assert batch.outputs == []
    assert batch.outcomes == [("src.likes", "ignored", "self_like")]
    assert list(batch.states) == [b"u1"]


# --- forwarding ---------------------------------------------------------------------------------


def test_event_on_another_partition_is_forwarded() -> None:
    worker = Worker()
    rec = record("src.messages", message("m1"), partition=other_part("u1"), key=b"somebody-else")
    batch = worker.run(rec)
    assert batch.outcomes == [("src.messages", "forwarded", "misrouted")]
    assert worker.loads == []
    assert batch.states == {}
    [out] = batch.outputs
    assert (out.topic, out.key, out.source, out.timestamp_ms) == ("int.routed", b"u1", rec, rec.timestamp_ms)
    assert orjson.loads(out.value) == {
        "topic": "src.messages",
        "partition": rec.partition,
        "offset": rec.offset,
        "key": base64.b64encode(b"somebody-else").decode(),
        "raw": rec.value.decode(),  # type: ignore[union-attr]
    }


@pytest.mark.parametrize(
    ("topic", "doc"),
    [
        ("src.messages", message("m1", reply_to_user_id="u2")),
        ("src.likes", like("l1", "u1", "u2")),
        ("src.logins", {"event_id": "in1", "user_id": "u1", "team_id": "t1", "ts": NOW}),
        ("src.activities", activity("v1", "u1", "vote")),
        ("src.activities", activity("g1", "u1", "group_created", group_id="g", invited_count=3)),
        ("src.activities", activity("t1", "u1", "thanks_card", target_user_id="u5", note="thx")),
    ],
)
def test_forwarded_event_fed_back_is_processed_exactly_as_the_original(
    topic: str, doc: dict[str, Any]
) -> None:
    direct = Worker().run(record(topic, doc))

    worker = Worker()
    forwarded = worker.run(record(topic, doc, partition=other_part("u1")))
    routed = fed_back(one_output(forwarded, "int.routed"))
    assert routed.partition == part("u1")
    batch = worker.run(routed)

    def shape(b: Batch) -> list[tuple[str, bytes | None, bytes]]:
        return [(out.topic, out.key, out.value) for out in b.outputs]

    assert shape(batch) == shape(direct)
    assert [status for _, status, _ in batch.outcomes] == [status for _, status, _ in direct.outcomes]
    assert batch.outcomes[0][0] == "int.routed"
    assert batch.states[b"u1"][1] == direct.states[b"u1"][1]
    again = worker.run(fed_back(one_output(forwarded, "int.routed")))
    assert again.outputs == []
    assert again.outcomes == [("int.routed", "duplicate", None)]


def test_forwarded_member_tombstone_fed_back_marks_the_user_left() -> None:
    worker = Worker()
    joined = worker.run(record("src.members", {"user_id": "u1", "team_id": "tR", "joined_at": D0}))
    assert joined.outcomes == [("src.members", "applied", None)]
    assert worker.state("u1").team == "tR"
    tombstone = record("src.members", None, user="u1", partition=other_part("u1"))
    forwarded = worker.run(tombstone)
    out = one_output(forwarded, "int.routed")
    assert orjson.loads(out.value) == {
        "topic": "src.members",
        "partition": tombstone.partition,
        "offset": tombstone.offset,
        "key": base64.b64encode(b"u1").decode(),
        "tombstone": True,
        "raw": "",
    }
    batch = worker.run(fed_back(out))
    assert batch.outcomes == [("int.routed", "applied", None)]
    assert worker.state("u1").doc["left"] is True


def test_member_tombstone_on_its_partition() -> None:
    worker = Worker()
    batch = worker.run(record("src.members", None, user="u2"))
    assert batch.outcomes == [("src.members", "applied", None)]
    assert worker.state("u2").doc["left"] is True


def test_forwarded_record_misrouted_again_is_still_processed_as_the_original() -> None:
    """A routed record on the wrong partition is forwarded again; its payload must survive the second hop."""
    worker = Worker()
    original = record("src.messages", message("m1"), partition=other_part("u1"))
    first_hop = one_output(worker.run(original), "int.routed")
    second = worker.run(fed_back(first_hop, partition=(part("u1") + 2) % PARTITIONS))
    assert second.outcomes == [("int.routed", "forwarded", "misrouted")]
    second_hop = one_output(second, "int.routed")
    batch = worker.run(fed_back(second_hop))
    assert batch.deadletters == []
    assert [v["rule"] for v in values(batch, "out.points")] == ["message_text"]


# --- dead letters -------------------------------------------------------------------------------


def deadletter(batch: Batch) -> dict[str, Any]:
    [out] = batch.outputs
    assert (out.topic, out.key) == ("out.dead", None)
    return orjson.loads(out.value)  # type: ignore[no-any-return]


def test_invalid_json_is_dead_lettered_with_its_origin() -> None:
    worker = Worker()
    rec = record("src.messages", None, user="u1", value=b"{not json")
    batch = worker.run(rec)
    letter = deadletter(batch)
    assert letter["detail"].startswith("value is not JSON")
    assert {k: v for k, v in letter.items() if k != "detail"} == {
        "topic": "src.messages",
        "partition": rec.partition,
        "offset": rec.offset,
        "key": "u1",
        "value": "{not json",
        "value_encoding": "utf-8",
        "value_size": 9,
        "truncated": False,
        "reason": "not_json",
        "ts": NOW,
    }
    assert batch.outputs[0].source is rec
    assert batch.outcomes == [("src.messages", "deadletter", "not_json")]
    assert batch.deadletters == ["not_json"]
    assert batch.states == {}
    assert worker.loads == []


def test_invalid_record_on_another_partition_is_dead_lettered_not_forwarded() -> None:
    rec = record("src.likes", None, user="u1", partition=other_part("u1"), value=b"\xff\xfe binary")
    letter = deadletter(Worker().run(rec))
    assert (letter["reason"], letter["partition"], letter["offset"]) == (
        "not_json",
        rec.partition,
        rec.offset,
    )
    assert letter["value_encoding"] == "base64"
    assert base64.b64decode(letter["value"]) == rec.value


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"user_id": "u1", "team_id": "t1", "kind": "text", "ts": NOW}, "missing_field"),
        ({**message("m1"), "ts": "yesterday"}, "wrong_type"),
        ({**message("m1"), "kind": "hologram"}, "unknown_kind"),
        ({**message("m1"), "ts": NOW + HOUR + 1}, "future_ts"),
        ({**message("m1"), "user_id": ""}, "invalid_value"),
    ],
)
def test_bad_fields_are_dead_lettered(doc: dict[str, Any], reason: str) -> None:
    batch = Worker().run(record("src.messages", doc, user="u1"))
    assert deadletter(batch)["reason"] == reason
    assert batch.outcomes == [("src.messages", "deadletter", reason)]


def test_event_at_the_future_limit_is_accepted() -> None:
    batch = Worker().run(record("src.messages", message("m1", ts=NOW + HOUR)))
    assert batch.outcomes == [("src.messages", "applied", None)]


def test_too_late_event_is_dead_lettered() -> None:
    worker = Worker()
    worker.run(record("src.messages", message("m1")))
    late = record("src.messages", message("m0", ts=NOW - 40 * DAY))
    batch = worker.run(late)
    letter = deadletter(batch)
    assert (letter["topic"], letter["partition"], letter["offset"], letter["reason"]) == (
        "src.messages",
        late.partition,
        late.offset,
        "too_late",
    )
    assert orjson.loads(letter["value"]) == message("m0", ts=NOW - 40 * DAY)
    assert "2026-10-14" in letter["detail"]
    assert batch.outcomes == [("src.messages", "deadletter", "too_late")]
    assert batch.deadletters == ["too_late"]
    assert batch.states == {}


def test_forwarded_too_late_event_names_its_original_record() -> None:
    worker = Worker()
    worker.run(record("src.messages", message("m1")))
    late = record("src.messages", message("m0", ts=NOW - 40 * DAY), partition=other_part("u1"))
    routed = fed_back(one_output(worker.run(late), "int.routed"))
    batch = worker.run(routed)
    letter = deadletter(batch)
    assert (letter["topic"], letter["partition"], letter["offset"], letter["reason"]) == (
        "src.messages",
        late.partition,
        late.offset,
        "too_late",
    )
    assert letter["value"] == late.value.decode()  # type: ignore[union-attr]
    assert batch.outputs[0].source is routed
    assert batch.outcomes == [("int.routed", "deadletter", "too_late")]


def test_forwarded_too_late_dead_letter_keeps_the_original_key() -> None:
    """The dead letter names the original record (topic, partition, offset): its key must be that record's too."""
    worker = Worker()
    worker.run(record("src.messages", message("m1")))
    late = record("src.messages", message("m0", ts=NOW - 40 * DAY), partition=other_part("u1"), key=b"team-7")
    letter = deadletter(worker.run(fed_back(one_output(worker.run(late), "int.routed"))))
    assert (letter["topic"], letter["offset"], letter["reason"]) == ("src.messages", late.offset, "too_late")
    assert letter["key"] == "team-7"


def test_garbage_on_the_routed_topic_is_a_processing_error() -> None:
    rec = Record("int.routed", 0, 7, b"u1", b"garbage", NOW)
    letter = deadletter(Worker().run(rec))
    assert (letter["topic"], letter["partition"], letter["offset"], letter["reason"]) == (
        "int.routed",
        0,
        7,
        "processing_error",
    )


def test_a_bad_record_does_not_stop_the_batch() -> None:
    worker = Worker()
    batch = worker.run(
        record("src.messages", message("m1")),
        record("src.messages", None, user="u1", value=b"]["),
        record("src.messages", message("m2")),
    )
    assert [status for _, status, _ in batch.outcomes] == ["applied", "deadletter", "applied"]
    assert worker.state("u1").doc["points"] == 4


# --- credits ------------------------------------------------------------------------------------


def test_like_credit_is_routed_to_the_target_and_counted_there() -> None:
    worker = Worker()
    rec = record("src.likes", like("l1", "u1", "u2"))
    batch = worker.run(rec)
    assert [v["rule"] for v in values(batch, "out.points")] == ["like_given"]
    credit = one_output(batch, "int.routed")
    assert (credit.key, credit.source, credit.timestamp_ms) == (b"u2", rec, rec.timestamp_ms)
    assert orjson.loads(credit.value) == {
        "credit": {
            "user_id": "u2",
            "kind": "like_received",
            "from_user_id": "u1",
            "team_id": "t1",
            "source_event_id": "l1",
            "ts": NOW,
        }
    }
    received = worker.run(fed_back(credit))
    assert received.outputs == []
    assert received.outcomes == [("int.routed", "applied", None)]
    assert list(received.states) == [b"u2"]
    assert worker.state("u2").doc["life"] == {"like_received": 1}


@pytest.mark.parametrize(
    ("kind", "rule", "points"),
    [("thanks_card", "thanks_received", 20), ("quality_marked", "quality_bonus", 10)],
)
def test_thanks_and_quality_credits_produce_the_receivers_award(kind: str, rule: str, points: int) -> None:
    worker = Worker()
    sent = worker.run(record("src.activities", activity("x1", "u1", kind, target_user_id="u5")))
    assert values(sent, "out.points") == []
    routed = fed_back(one_output(sent, "int.routed"))
    assert routed.partition == part("u5")
    batch = worker.run(routed)
    [award] = values(batch, "out.points")
    assert one_output(batch, "out.points").key == b"u5"
    assert (award["user_id"], award["rule"], award["points"], award["source_event_id"]) == (
        "u5",
        rule,
        points,
        "x1",
    )
    assert award["award_id"] == award_id(rule, "u5", "x1")
    assert worker.state("u5").doc["points"] == points
    assert worker.state("u1").doc["points"] == 0
    again = worker.run(fed_back(one_output(sent, "int.routed")))
    assert again.outputs == []
    assert again.outcomes == [("int.routed", "duplicate", None)]
    assert worker.state("u5").doc["points"] == points


def test_credit_on_the_wrong_partition_still_reaches_its_receiver() -> None:
    worker = Worker()
    sent = worker.run(record("src.activities", activity("x1", "u1", "thanks_card", target_user_id="u5")))
    misrouted = worker.run(fed_back(one_output(sent, "int.routed"), partition=other_part("u5")))
    assert misrouted.outcomes == [("int.routed", "forwarded", "misrouted")]
    batch = worker.run(fed_back(one_output(misrouted, "int.routed")))
    assert batch.deadletters == []
    assert [(v["user_id"], v["rule"], v["points"]) for v in values(batch, "out.points")] == [
        ("u5", "thanks_received", 20)
    ]


# --- batches --------------------------------------------------------------------------------------


def test_take_batch_snapshots_changed_users_only() -> None:
    seen = UserState()
    Engine(load_rules(), Calendar(TZ)).apply(Login("in-old", "u9", "t1", NOW), seen)
    late = UserState()
    late.doc["wm"] = NOW + 50 * DAY
    worker = Worker({b"u9": seen.encode(), b"u6": late.encode()})
    pipeline = worker.pipeline
    applied = record("src.messages", message("m1", user="u1"))
    pipeline.process(applied)
    pipeline.process(
        record("src.logins", {"event_id": "in-old", "user_id": "u9", "team_id": "t1", "ts": NOW})
    )
    pipeline.process(record("src.messages", message("m2", user="u6")))  # too late for u6
    pipeline.process(record("src.messages", message("m3", user="u5"), partition=other_part("u5")))
    pipeline.process(record("src.messages", None, user="u7", value=b"nope"))
    last_u1 = record("src.likes", like("l1", "u1", "u1"))
    pipeline.process(last_u1)
    assert pipeline.pending == 6
    batch = pipeline.take_batch()
    assert [status for _, status, _ in batch.outcomes] == [
        "applied",
        "duplicate",
        "deadletter",
        "forwarded",
        "deadletter",
        "ignored",
    ]
    assert list(batch.states) == [b"u1"]
    state_record, raw = batch.states[b"u1"]
    assert state_record.partition == part("u1")
    assert UserState.decode(raw).doc["points"] == 2
    assert pipeline.pending == 0
    assert pipeline.take_batch() == Batch()


def test_snapshot_is_taken_at_take_batch_time() -> None:
    worker = Worker()
    pipeline = worker.pipeline
    pipeline.process(record("src.messages", message("m1")))
    first = pipeline.take_batch()
    pipeline.process(record("src.messages", message("m2")))
    second = pipeline.take_batch()
    assert UserState.decode(first.states[b"u1"][1]).doc["points"] == 2
    assert UserState.decode(second.states[b"u1"][1]).doc["points"] == 4


def test_crash_before_storing_replays_into_the_same_awards() -> None:
    records = [
        record("src.messages", message("m1")),
        record("src.likes", like("l1", "u1", "u5")),
        record("src.activities", activity("t1", "u5", "thanks_card", target_user_id="u1")),
        record("src.logins", {"event_id": "in1", "user_id": "u5", "team_id": "t1", "ts": NOW}),
    ]
    first = Worker().run(*records)
    replay = Worker().run(*records)  # nothing was stored: the states start over
    assert [(o.topic, o.key, o.value) for o in first.outputs] == [
        (o.topic, o.key, o.value) for o in replay.outputs
    ]


def test_replay_after_storing_emits_nothing() -> None:
    worker = Worker()
    records = [
        record("src.messages", message("m1")),
        record("src.activities", activity("t1", "u5", "thanks_card", target_user_id="u1")),
    ]
    batch = worker.run(*records)
    credits = [fed_back(out) for out in batch.outputs if out.topic == "int.routed"]
    worker.run(*credits)
    restarted = Worker(dict(worker.store))
    again = restarted.run(*records, *credits)
    assert again.outputs == []
    assert {status for _, status, _ in again.outcomes} == {"duplicate"}
    assert again.states == {}


def test_trim_evicts_least_recently_used_clean_states() -> None:
    worker = Worker(cache_size=2)
    pipeline = worker.pipeline
    users = ["u1", "u2", "u5", "u9"]
    worker.run(*(record("src.messages", message(f"m-{u}", user=u)) for u in users))
    pipeline.trim()
    assert list(pipeline.cache) == [b"u5", b"u9"]
    worker.run(record("src.messages", message("m-again", user="u1")))
    assert worker.loads.count(b"u1") == 2  # evicted, so loaded again from the store
    assert worker.state("u1").doc["points"] == 4


def test_trim_keeps_states_of_the_current_batch() -> None:
    worker = Worker(cache_size=1)
    pipeline = worker.pipeline
    for u in ("u1", "u2", "u5"):
        pipeline.process(record("src.messages", message(f"m-{u}", user=u)))
    pipeline.trim()
    assert set(pipeline.cache) == {b"u1", b"u2", b"u5"}
    batch = pipeline.take_batch()
    assert set(batch.states) == {b"u1", b"u2", b"u5"}
    pipeline.trim()
    assert list(pipeline.cache) == [b"u5"]
