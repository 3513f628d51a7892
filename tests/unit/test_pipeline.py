"""Unit tests of stream.pipeline without Kafka: routing, dead letters, credits, batches and state changes."""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka.partitioner import murmur2

from stream.core.state import MemoryStore, StateCache, Transaction
from stream.engine.awards import award_id
from stream.engine.layout import CORE, decode_value, encode_value, new_core, prefix
from stream.engine.periods import Calendar
from stream.engine.processor import Engine, Outcome
from stream.events import Event
from stream.pipeline import Batch, Output, Pipeline, Record, Topics, partition_for
from stream.rules import load_rules
from stream.rules.versions import RuleBook
from tests.unit.support import personal_only

TZ = "Asia/Shanghai"
VERSION = "2026-11-23.1"
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # 2026-11-23 00:00 in Shanghai
NOW = D0 + 12 * HOUR
PARTITIONS = 4
# The per-user programme only: groups, teams and boards (which add internal messages) are tested in
# tests/unit/domains and tests/unit/test_social_pipeline.py.
BOOK = RuleBook.of(personal_only(load_rules()), ZoneInfo(TZ))

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


def core_key(user: str) -> bytes:
    return prefix(user.encode()) + CORE


def owner(key: bytes) -> bytes:
    """The owner a state key belongs to: a user, or a group, team, board or partition (``\\0g\\0name``)."""
    if key.startswith(b"\x00"):
        kind, name = key.split(b"\x00")[1:3]
        return b"\x00" + kind + b"\x00" + name
    return key.split(b"\x00", 1)[0]


def key_partition(key: bytes) -> int:
    """The partition a state key lives on: its owner's, or for a partition's own key that partition."""
    if key.startswith(b"\x00p\x00"):
        return int(key.split(b"\x00")[2])
    return partition_for(owner(key), PARTITIONS)


def message(event_id: str, user: str = "u1", ts: int = NOW, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "team_id": "t1", "kind": "text", "ts": ts, **extra}


def like(event_id: str, user: str, target: str, ts: int = NOW) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "team_id": "t1", "target_user_id": target, "ts": ts}


def activity(event_id: str, user: str, kind: str, ts: int = NOW, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "team_id": "t1", "type": kind, "ts": ts, **extra}


def login(event_id: str, user: str = "u1", ts: int = NOW) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "team_id": "t1", "ts": ts}


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


class CountingStore(MemoryStore):
    """A memory store that remembers every key read from it (a cache miss)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[bytes] = []

    def get(self, partition: int, key: bytes) -> bytes | None:
        assert partition == key_partition(key), "a key is read on its owner's partition"
        self.reads.append(key)
        return super().get(partition, key)

    def scan(self, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return super().scan(partition, prefix)


class Worker:
    """A pipeline over an in-memory store; ``run`` stores a batch's changes as the agent would."""

    def __init__(self, store: CountingStore | None = None, cache_size: int = 100_000) -> None:
        self.store = CountingStore() if store is None else store
        self.cache = StateCache(self.store, decode_value, encode_value, size=cache_size)
        self.engine = Engine(BOOK, Calendar(TZ))
        self.now = NOW  # the worker's clock
        self.pipeline = Pipeline(self.engine, TOPICS, PARTITIONS, lambda: self.now, self.cache)

    def run(self, *records: Record) -> Batch:
        batch = self.pipeline.run(records)
        self.store_changes(batch)
        return batch

    def store_changes(self, batch: Batch) -> None:
        for key, (partition, raw) in batch.changes.items():
            self.store.write(partition, {key: raw})

    def stored(self) -> dict[bytes, bytes]:
        """Every stored key of every partition."""
        return {k: v for data in self.store.partitions.values() for k, v in data.items()}

    def core(self, user: str) -> dict[str, Any]:
        raw = self.store.partitions.get(part(user), {}).get(core_key(user))
        assert raw is not None, f"no stored state for {user}"
        return decode_value(core_key(user), raw)  # type: ignore[no-any-return]

    def points(self, user: str) -> int:
        return int(self.core(user)["points"])

    def core_reads(self, user: str) -> int:
        return self.store.reads.count(core_key(user))


def seeded(user: str, **core: Any) -> CountingStore:
    """A store holding a user's core record with some fields set."""
    store = CountingStore()
    doc = {**new_core(), **core}
    store.write(part(user), {core_key(user): encode_value(core_key(user), doc)})
    return store


def values(batch: Batch, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(out.value) for out in batch.outputs if out.topic == topic]


def one_output(batch: Batch, topic: str) -> Output:
    [output] = [out for out in batch.outputs if out.topic == topic]
    return output


def changed_users(batch: Batch) -> set[bytes]:
    """The users whose keys a batch changed (a partition's own keys, e.g. its economy, left out)."""
    return {owner(key) for key in batch.changes if not key.startswith(b"\x00p\x00")}


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
    common = {
        "user_id": "u1",
        "team_id": "t1",
        "status": "granted",
        "period": "2026-11-23",
        "source_event_id": "m1",
        "rules_version": VERSION,
        "ts": NOW,
    }
    assert values(batch, "out.points") == [
        {
            "award_id": award_id("message_text", "u1", "m1"),
            "points": 2,
            "rule": "message_text",
            "reason": "text message",
            **common,
        },
        {
            "award_id": award_id("reply", "u1", "m1"),
            "points": 3,
            "rule": "reply",
            "reason": "reply to another user",
            **common,
        },
    ]
    assert batch.outcomes == [("src.messages", "applied", None)]
    assert [(out, rule, kind, points) for out, rule, kind, points in batch.awards] == [
        (batch.outputs[0], "message_text", "points", 2),
        (batch.outputs[1], "reply", "points", 3),
    ]
    assert batch.deadletters == []
    # the changed keys are the user's own, on the record's partition, encoded; the core holds the points
    assert changed_users(batch) == {b"u1"}
    assert {partition for partition, _ in batch.changes.values()} == {rec.partition}
    assert all(raw is not None for _, raw in batch.changes.values())
    assert core_key("u1") in batch.changes
    assert batch.last == {rec.partition: rec}
    assert worker.points("u1") == 5


def test_each_state_key_is_loaded_once_and_cached() -> None:
    worker = Worker()
    worker.run(*(record("src.messages", message(f"m{i}")) for i in range(3)))
    worker.run(record("src.logins", login("in1")))
    assert worker.core_reads("u1") == 1
    assert len(worker.store.reads) == len(set(worker.store.reads))
    # 3 text messages 3 x 2 + daily task "3 messages" 5 + daily_login 5
    assert worker.points("u1") == 16
    worker.pipeline.forget()
    assert worker.cache.values == {}
    worker.run(record("src.messages", message("m9")))
    assert worker.core_reads("u1") == 2  # the store is the truth again
    assert worker.points("u1") == 18  # + one text message


def test_stored_state_is_the_starting_point() -> None:
    first = Worker()
    rec = record("src.messages", message("m1"))
    first.run(rec)
    restarted = Worker(first.store)
    batch = restarted.run(rec)
    assert batch.outputs == []
    assert batch.outcomes == [("src.messages", "duplicate", None)]
    assert batch.changes == {}
    assert batch.last == {}


def test_level_badge_goes_to_the_badges_topic() -> None:
    worker = Worker(seeded("u1", points=998))
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
    assert worker.core("u1")["level"] == 1


def test_task_badge_goes_to_the_badges_topic_with_its_points() -> None:
    worker = Worker()
    batch = worker.run(record("src.activities", activity("f1", "u1", "feed_view")))
    [points] = values(batch, "out.points")
    assert (points["rule"], points["points"], points["period"]) == ("daily_feed_view", 5, "2026-11-23")
    assert points["award_id"] == award_id("daily_feed_view", "u1", "2026-11-23")
    [badge] = values(batch, "out.badges")
    assert (badge["badge"], badge["kind"], badge["period"]) == ("daily_feed_view", "task", "2026-11-23")
    assert badge["award_id"] == award_id("badge", "u1", "daily_feed_view", "2026-11-23")
    assert [(rule, kind, n) for _, rule, kind, n in batch.awards] == [
        ("daily_feed_view", "points", 5),
        ("daily_feed_view", "task", 0),
    ]


def test_ignored_event_is_reported_with_its_reason() -> None:
    batch = Worker().run(record("src.likes", like("l1", "u1", "u1")))
    assert batch.outputs == []
    assert batch.outcomes == [("src.likes", "ignored", "self_like")]
    assert changed_users(batch) == {b"u1"}  # its id is remembered: a redelivery is a duplicate


# --- forwarding ---------------------------------------------------------------------------------


def test_event_on_another_partition_is_forwarded() -> None:
    worker = Worker()
    rec = record("src.messages", message("m1"), partition=other_part("u1"), key=b"somebody-else")
    batch = worker.run(rec)
    assert batch.outcomes == [("src.messages", "forwarded", "misrouted")]
    assert worker.store.reads == []
    assert batch.changes == {}
    assert batch.last == {}
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
        ("src.logins", login("in1")),
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

    def shape(b: Batch) -> list[tuple[str, bytes | None, bytes | None]]:
        return [(out.topic, out.key, out.value) for out in b.outputs]

    assert shape(batch) == shape(direct)
    assert [status for _, status, _ in batch.outcomes] == [status for _, status, _ in direct.outcomes]
    assert batch.outcomes[0][0] == "int.routed"
    assert batch.changes == direct.changes
    assert batch.last == {part("u1"): routed}
    again = worker.run(fed_back(one_output(forwarded, "int.routed")))
    assert again.outputs == []
    assert again.outcomes == [("int.routed", "duplicate", None)]
    assert again.changes == {}


def test_forwarded_member_tombstone_fed_back_marks_the_user_left() -> None:
    worker = Worker()
    joined = worker.run(record("src.members", {"user_id": "u1", "team_id": "tR", "joined_at": D0}))
    assert joined.outcomes == [("src.members", "applied", None)]
    assert (worker.core("u1")["roster"], worker.core("u1")["left"]) == (["tR", D0], False)
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
    assert worker.core("u1")["left"] is True


def test_member_tombstone_on_its_partition() -> None:
    worker = Worker()
    batch = worker.run(record("src.members", None, user="u2"))
    assert batch.outcomes == [("src.members", "applied", None)]
    assert worker.core("u2")["left"] is True


def test_forwarded_record_misrouted_again_is_still_processed_as_the_original() -> None:
    """A routed record on the wrong partition is forwarded again; its payload must survive the second hop."""
    worker = Worker()
    original = record("src.messages", message("m1"), partition=other_part("u1"))
    first_hop = one_output(worker.run(original), "int.routed")
    second = worker.run(fed_back(first_hop, partition=(part("u1") + 2) % PARTITIONS))
    assert second.outcomes == [("int.routed", "forwarded", "misrouted")]
    assert second.changes == {}
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
    assert batch.changes == {}
    assert worker.store.reads == []


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
        ({**message("m1"), "ts": NOW + HOUR + 1}, "future_ts"),  # max_future_minutes: 60
        ({**message("m1"), "user_id": ""}, "invalid_value"),
    ],
)
def test_bad_fields_are_dead_lettered(doc: dict[str, Any], reason: str) -> None:
    batch = Worker().run(record("src.messages", doc, user="u1"))
    assert deadletter(batch)["reason"] == reason
    assert batch.outcomes == [("src.messages", "deadletter", reason)]
    assert batch.changes == {}


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
    assert batch.changes == {}
    assert batch.last == {}


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
    assert worker.points("u1") == 4  # two text messages


class Exploding:
    """An engine that applies the event (writing to the transaction) and then fails for one event id."""

    def __init__(self, engine: Engine, event_id: str) -> None:
        self.engine = engine
        self.event_id = event_id
        self.book = engine.book
        self.calendar = engine.calendar

    def apply(self, event: Event, tx: Transaction, user_key: bytes, *rest: Any) -> Outcome:
        out = self.engine.apply(event, tx, user_key, *rest)
        assert tx.undo, "the event wrote to its transaction before failing"
        if getattr(event, "event_id", None) == self.event_id:
            raise RuntimeError("boom")
        return out


def test_an_exception_in_the_engine_is_a_processing_error_that_changes_no_state() -> None:
    worker = Worker()
    worker.run(record("src.messages", message("m1")))
    before = worker.stored()
    values_before = dict(worker.cache.values)
    worker.pipeline.engine = Exploding(worker.engine, "m2")  # type: ignore[assignment]
    failing = record("src.messages", message("m2", reply_to_user_id="u2"))
    batch = worker.run(failing)
    letter = deadletter(batch)
    assert (letter["offset"], letter["reason"]) == (failing.offset, "processing_error")
    assert letter["detail"] == "RuntimeError: boom"
    assert batch.outcomes == [("src.messages", "deadletter", "processing_error")]
    assert batch.deadletters == ["processing_error"]
    assert batch.changes == {}
    assert batch.last == {}
    assert worker.cache.values == values_before
    assert worker.stored() == before
    # the failed event left no trace: its id is not remembered, the next event counts normally
    nxt = worker.run(record("src.messages", message("m3")))
    assert [v["rule"] for v in values(nxt, "out.points")] == ["message_text"]
    assert worker.points("u1") == 4


def test_a_processing_error_in_a_batch_keeps_the_other_records_changes() -> None:
    worker = Worker()
    worker.pipeline.engine = Exploding(worker.engine, "bad")  # type: ignore[assignment]
    batch = worker.run(
        record("src.messages", message("m1")),
        record("src.messages", message("bad", ts=NOW + 1)),
        record("src.messages", message("m2", ts=NOW + 2)),
    )
    assert [status for _, status, _ in batch.outcomes] == ["applied", "deadletter", "applied"]
    assert batch.deadletters == ["processing_error"]
    assert worker.points("u1") == 4  # m1 and m2 only
    assert worker.core("u1")["wm"] == NOW + 2


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
            "kind": "like",
            "from_user_id": "u1",
            "team_id": "t1",
            "source_event_id": "l1",
            "ts": NOW,
            "sp": part("u1"),
        }
    }
    assert changed_users(batch) == {b"u1"}  # the receiver's state changes on the receiver's partition
    received = worker.run(fed_back(credit))
    assert received.outputs == []
    assert received.outcomes == [("int.routed", "applied", None)]
    assert changed_users(received) == {b"u2"}
    assert worker.core("u2")["#likes_received_lifetime"] == 1
    assert worker.points("u2") == 0


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
    assert worker.points("u5") == points
    assert worker.points("u1") == 0
    again = worker.run(fed_back(one_output(sent, "int.routed")))
    assert again.outputs == []
    assert again.outcomes == [("int.routed", "duplicate", None)]
    assert again.changes == {}
    assert worker.points("u5") == points


def test_credit_on_the_wrong_partition_still_reaches_its_receiver() -> None:
    worker = Worker()
    sent = worker.run(record("src.activities", activity("x1", "u1", "thanks_card", target_user_id="u5")))
    misrouted = worker.run(fed_back(one_output(sent, "int.routed"), partition=other_part("u5")))
    assert misrouted.outcomes == [("int.routed", "forwarded", "misrouted")]
    assert misrouted.changes == {}
    batch = worker.run(fed_back(one_output(misrouted, "int.routed")))
    assert batch.deadletters == []
    assert [(v["user_id"], v["rule"], v["points"]) for v in values(batch, "out.points")] == [
        ("u5", "thanks_received", 20)
    ]


# --- batches and state changes --------------------------------------------------------------------


def test_take_batch_holds_the_changes_of_applied_records_only() -> None:
    seed = Worker()
    seed.run(record("src.logins", login("in-old", "u9")))
    u6 = seeded("u6", wm=NOW + 50 * DAY)
    store = seed.store
    store.write(part("u6"), u6.partitions[part("u6")])
    worker = Worker(store)
    pipeline = worker.pipeline
    applied = record("src.messages", message("m1", user="u1"))
    pipeline.process(applied)
    pipeline.process(record("src.logins", login("in-old", "u9")))  # duplicate
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
    assert changed_users(batch) == {b"u1"}
    assert {partition for partition, _ in batch.changes.values()} == {part("u1")}
    assert batch.last == {part("u1"): last_u1}
    _, raw = batch.changes[core_key("u1")]
    assert raw is not None and decode_value(core_key("u1"), raw)["points"] == 2
    assert pipeline.pending == 0
    assert pipeline.take_batch() == Batch()


def test_changes_are_encoded_at_take_batch_time() -> None:
    worker = Worker()
    pipeline = worker.pipeline
    pipeline.process(record("src.messages", message("m1")))
    first = pipeline.take_batch()
    pipeline.process(record("src.messages", message("m2")))
    second = pipeline.take_batch()
    assert decode_value(core_key("u1"), first.changes[core_key("u1")][1])["points"] == 2  # type: ignore[arg-type]
    assert decode_value(core_key("u1"), second.changes[core_key("u1")][1])["points"] == 4  # type: ignore[arg-type]
    assert set(second.changes) <= set(first.changes)  # only the keys the second message changed


def test_pruned_periods_are_tombstones_in_the_changes() -> None:
    worker = Worker()
    worker.run(record("src.messages", message("m1")))  # 2026-11-23
    # the user's period keys (not its core, nor its ledger, which keeps the latest awards whatever their age)
    old_keys = {key for key in worker.stored() if key.startswith(b"u1\x00") and key != core_key("u1")}
    old_keys = {key for key in old_keys if not key.startswith((b"u1\x00l:", b"u1\x00e"))}  # kept for life
    assert {key.split(b"\x00", 1)[1] for key in old_keys} == {b"d:2026-11-23", b"w:2026-W48"}
    # 50 days later (2027-01-12) the horizon (watermark - 35 days = 2026-12-08 12:00) has passed the end
    # of 2026-11-23 and of 2026-W48 (2026-11-30 00:00)
    worker.now = NOW + 50 * DAY
    batch = worker.run(record("src.messages", message("m2", ts=NOW + 50 * DAY)))
    tombstones = {key for key, (_, raw) in batch.changes.items() if raw is None}
    assert tombstones == old_keys
    assert all(batch.changes[key][0] == part("u1") for key in tombstones)
    assert not old_keys & set(worker.stored())
    assert worker.points("u1") == 4


def test_crash_before_storing_replays_into_the_same_awards() -> None:
    records = [
        record("src.messages", message("m1")),
        record("src.likes", like("l1", "u1", "u5")),
        record("src.activities", activity("t1", "u5", "thanks_card", target_user_id="u1")),
        record("src.logins", login("in1", "u5")),
    ]
    first = Worker().run(*records)
    replay = Worker().run(*records)  # nothing was stored: the states start over
    assert [(o.topic, o.key, o.value) for o in first.outputs] == [
        (o.topic, o.key, o.value) for o in replay.outputs
    ]
    assert first.changes == replay.changes


def test_replay_after_storing_emits_nothing() -> None:
    worker = Worker()
    records = [
        record("src.messages", message("m1")),
        record("src.activities", activity("t1", "u5", "thanks_card", target_user_id="u1")),
    ]
    batch = worker.run(*records)
    credits = [fed_back(out) for out in batch.outputs if out.topic == "int.routed"]
    worker.run(*credits)
    restarted = Worker(worker.store)
    again = restarted.run(*records, *credits)
    assert again.outputs == []
    assert {status for _, status, _ in again.outcomes} == {"duplicate"}
    assert again.changes == {}


def test_trim_evicts_the_keys_loaded_first_and_reloads_them_from_the_store() -> None:
    worker = Worker(cache_size=2)
    pipeline = worker.pipeline
    users = ["u1", "u2", "u5", "u9"]
    worker.run(*(record("src.messages", message(f"m-{u}", user=u)) for u in users))
    assert len(worker.cache.values) > 2
    pipeline.trim()
    assert len(worker.cache.values) == 2
    assert core_key("u1") not in worker.cache.values
    worker.run(record("src.messages", message("m-again", user="u1")))
    assert worker.core_reads("u1") == 2  # evicted, so loaded again from the store
    assert worker.points("u1") == 4


def test_trim_keeps_unflushed_changes() -> None:
    worker = Worker(cache_size=1)
    pipeline = worker.pipeline
    for u in ("u1", "u2", "u5"):
        pipeline.process(record("src.messages", message(f"m-{u}", user=u)))
    dirty = set(worker.cache.dirty)
    pipeline.trim()
    assert dirty <= set(worker.cache.values)
    batch = pipeline.take_batch()
    assert changed_users(batch) == {b"u1", b"u2", b"u5"}
    # and the partitions' economy and the users' ledgers, stored when the batch is taken
    stored_at_the_end = {key for key in batch.changes if key.startswith(b"\x00p\x00") or b"\x00l:" in key}
    # (the partitions' event times, \0p\0<n>\0xw, are written by the events themselves)
    assert set(batch.changes) - stored_at_the_end == {
        key for key in dirty if not key.startswith(b"\x00p\x00")
    }
    pipeline.trim()
    assert len(worker.cache.values) == 1


def test_tx_reads_of_one_batch_see_the_earlier_records() -> None:
    """Within a batch nothing is stored yet: the cache is the truth, so a second event sees the first."""
    worker = Worker()
    batch = worker.run(*(record("src.messages", message(f"m{i}", ts=NOW + i)) for i in range(3)))
    rules = Counter(v["rule"] for v in values(batch, "out.points"))
    assert rules == Counter({"message_text": 3, "daily_messages": 1})
    assert worker.core_reads("u1") == 1
