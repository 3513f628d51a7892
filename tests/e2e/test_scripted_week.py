"""End to end: a scripted day-and-week of events for several users, against a real broker.

Every expected number below is worked out by hand from SPEC's default rules, in the comments.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from tests.e2e.harness import ROOT, Topics, WorkerProcess, create_topics, make_producer, produce, read_all

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
PARTITIONS = 3


def _week_a_monday() -> date:
    """Monday of the ISO week two weeks before this one (local), so every event is safely in the past."""
    today = datetime.now(TZ).date()
    return today - timedelta(days=today.weekday() + 14)


MONDAY = _week_a_monday()


def at(day: int, hh: int, mm: int, ss: int = 0) -> int:
    """Epoch ms of local (Shanghai) time on MONDAY + day."""
    d = MONDAY + timedelta(days=day)
    return int(datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=TZ).timestamp() * 1000)


class Script:
    """Collect events in production order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, Any]] = []
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"ev-{self.n}"

    def msg(
        self, user: str, team: str, ts: int, kind: str = "text", reply_to: str | None = None, **kw: Any
    ) -> str:
        eid = kw.pop("event_id", None) or self._id()
        value = {"event_id": eid, "user_id": user, "team_id": team, "kind": kind, "ts": ts, "group_id": "g1"}
        if reply_to:
            value["reply_to_user_id"] = reply_to
        self.records.append(("message", user, value))
        return eid

    def like(self, user: str, team: str, target: str, ts: int) -> None:
        value = {"event_id": self._id(), "user_id": user, "team_id": team, "target_user_id": target, "ts": ts}
        self.records.append(("like", user, value))

    def login(self, user: str, team: str, ts: int) -> None:
        self.records.append(
            ("login", user, {"event_id": self._id(), "user_id": user, "team_id": team, "ts": ts})
        )

    def act(self, user: str, team: str, kind: str, ts: int, **fields: Any) -> None:
        value = {"event_id": self._id(), "user_id": user, "team_id": team, "type": kind, "ts": ts, **fields}
        self.records.append(("activity", user, value))


def build_script() -> tuple[Script, list[tuple[str, str | None, bytes]]]:
    s = Script()
    for user, team in [("alice", "T1"), ("bob", "T1"), ("carol", "T2"), ("dave", "T2"), ("eve", "T3")]:
        s.records.append(("member", user, {"user_id": user, "team_id": team, "joined_at": at(-60, 9, 0)}))
    s.records.append(("member", "gone", None))  # tombstone: the user left

    # alice: 5 + 6 + 5 + 10 + 5 + 2 + 10 + 8 + 5 + 2 = 58 of base points, and the tasks:
    # daily_messages 5 (7 messages on Monday), daily_likes 5 (11 counted likes on Monday), weekly_vote 30
    # (her Monday vote). No streak (2 days), one group only (g1). Total 98.
    s.login("alice", "T1", at(0, 9, 0))  # daily_login 5
    s.login("alice", "T1", at(0, 9, 5))  # second login of the day: 0
    for minute in (10, 11, 12):
        s.msg("alice", "T1", at(0, 9, minute))  # 3 x text 2 = 6
    s.msg("alice", "T1", at(0, 9, 20), kind="voice")  # 5
    image = s.msg("alice", "T1", at(0, 9, 21), kind="image")  # 10
    s.msg("alice", "T1", at(0, 9, 30), reply_to="bob")  # text 2 + reply 3 = 5
    s.msg("alice", "T1", at(0, 9, 31), reply_to="alice")  # replying to oneself: text 2 only
    for i in range(6):
        s.like("alice", "T1", "bob", at(0, 10, i))  # 5 count, the 6th is over the pair limit
    for i in range(6):
        s.like("alice", "T1", "carol", at(0, 10, 10 + i))  # 5 count
    s.like("alice", "T1", "dave", at(0, 10, 30))  # counts, but the 10-point daily cap is reached
    s.like("alice", "T1", "alice", at(0, 10, 31))  # self-like: nothing
    # like_given: 10 counted likes before the cap -> 10
    s.act("alice", "T1", "vote", at(0, 23, 59, 30))  # 8, on Monday
    s.login("alice", "T1", at(1, 0, 0, 30))  # Tuesday 00:00:30 local: a new day, daily_login 5
    s.act("alice", "T1", "thanks_card", at(1, 10, 0), target_user_id="bob", note="thanks!")  # alice 0, bob 20
    s.msg("alice", "T1", at(0, 9, 21), kind="image", event_id=image)  # the same event again: 0
    s.msg("alice", "T1", at(-10, 12, 0))  # late but within the 35-day retention: text 2
    s.msg("alice", "T1", at(-40, 12, 0))  # 40 days before her latest event: dead letter too_late

    # bob: 99 texts Mon..Sat, the 100th on Sunday 23:59:59 -> 200 + weekly_active_100 100;
    # one more on next Monday 00:00:01 (new ISO week): 2; thanks from alice 20; daily_messages on
    # Mon..Sat (17, 17, 17, 17, 17, 14 messages; Sunday and next Monday have 1 each): 6 x 5 = 30.
    # Likes received: 5 counted from alice (no achievement). Total 352.
    for i in range(99):
        s.msg("bob", "T1", at(i // 17, 8, i % 17))
    s.msg("bob", "T1", at(6, 23, 59, 59))
    s.msg("bob", "T1", at(7, 0, 0, 1))

    # carol: group with 3 invited 15; group with nobody invited 0; feed view 0; vote 8; quality mark 10 = 33;
    # tasks: daily_feed_view 5 (Wednesday), weekly_vote 30. Total 68.
    s.act("carol", "T2", "group_created", at(2, 10, 0), group_id="g7", invited_count=3)
    s.act("carol", "T2", "group_created", at(2, 10, 5), group_id="g8", invited_count=0)
    s.act("carol", "T2", "feed_view", at(2, 11, 0))
    s.act("carol", "T2", "vote", at(2, 12, 0))

    # dave: thanks to himself 0; marks carol's reply (carol +10, dave 0); login 5; no task. Total 5.
    s.act("dave", "T2", "thanks_card", at(3, 9, 0), target_user_id="dave")
    s.act("dave", "T2", "quality_marked", at(3, 9, 5), target_user_id="carol")
    s.login("dave", "T2", at(3, 8, 0))

    # eve: 100 file messages in week A: 1000 + weekly_active_100 100 = 1100; daily_messages Mon..Fri (20 a
    # day): 5 x 5 = 25. Total 1125; reaches communicator (1000).
    for i in range(100):
        s.msg("eve", "T3", at(i // 20, 14, i % 20), kind="file")

    now = int(time.time() * 1000)
    bad: list[tuple[str, str | None, bytes]] = [
        ("message", "zed", b"not json{"),
        (
            "message",
            "zed",
            json.dumps({"event_id": "b1", "user_id": "zed", "team_id": "T9", "ts": now}).encode(),
        ),
        (
            "message",
            "zed",
            json.dumps(
                {"event_id": "b2", "user_id": "zed", "team_id": "T9", "kind": "text", "ts": "noon"}
            ).encode(),
        ),
        (
            "message",
            "zed",
            json.dumps(
                {"event_id": "b3", "user_id": "zed", "team_id": "T9", "kind": "hologram", "ts": now}
            ).encode(),
        ),
        (
            "activity",
            "zed",
            json.dumps(
                {"event_id": "b4", "user_id": "zed", "team_id": "T9", "type": "dance", "ts": now}
            ).encode(),
        ),
        (
            "login",
            "zed",
            json.dumps(
                {"event_id": "b5", "user_id": "zed", "team_id": "T9", "ts": now + 2 * 3_600_000}
            ).encode(),
        ),
    ]
    return s, bad


EXPECTED_POINTS = {"alice": 98, "bob": 352, "carol": 68, "dave": 5, "eve": 1125}
EXPECTED_DEAD = {
    "not_json": 1,
    "missing_field": 1,
    "wrong_type": 1,
    "unknown_kind": 1,
    "unknown_type": 1,
    "future_ts": 1,
    "too_late": 1,
}


def _schema(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())


def test_scripted_week(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    create_topics(bootstrap, topics, PARTITIONS)
    worker = WorkerProcess(bootstrap, topics, tmp_path, f"{topics.prefix}-a", PARTITIONS).start()
    try:
        script, bad = build_script()
        # librdkafka's default partitioner (CRC32) puts some users on partitions other than Kafka's
        # murmur2 would: the worker must re-route them and still count exactly.
        producer = make_producer(bootstrap, partitioner="consistent_random")
        produce(producer, topics, script.records)
        produce(producer, topics, bad, raw=True)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            points = read_all(bootstrap, topics.output("points"), timeout=5)
            dead = read_all(bootstrap, topics.output("deadletter"), timeout=5)
            totals: dict[str, int] = defaultdict(int)
            for award in {a["award_id"]: a for a in points}.values():
                totals[award["user_id"]] += award["points"]
            if dict(totals) == EXPECTED_POINTS and len(dead) >= len(EXPECTED_DEAD):
                break
            time.sleep(1)
        badges = read_all(bootstrap, topics.output("badges"), timeout=5)

        assert dict(totals) == EXPECTED_POINTS, worker.log_tail()
        assert Counter(d["reason"] for d in dead) == EXPECTED_DEAD
        assert len({a["award_id"] for a in points}) == len(points), "no award is emitted twice in a clean run"

        # Periods: bob's weekly bonus belongs to week A; alice's vote to Monday, her 2nd login to Tuesday.
        iso = MONDAY.isocalendar()
        by_rule = defaultdict(list)
        for award in points:
            by_rule[(award["user_id"], award["rule"])].append(award)
        assert [a["period"] for a in by_rule[("bob", "weekly_active_100")]] == [f"{iso.year}-W{iso.week:02d}"]
        assert [a["period"] for a in by_rule[("alice", "vote")]] == [MONDAY.isoformat()]
        assert sorted(a["period"] for a in by_rule[("alice", "daily_login")]) == [
            MONDAY.isoformat(),
            (MONDAY + timedelta(days=1)).isoformat(),
        ]
        assert sum(a["points"] for a in by_rule[("alice", "like_given")]) == 10
        assert [a["points"] for a in by_rule[("bob", "thanks_received")]] == [20]
        assert [a["points"] for a in by_rule[("carol", "quality_bonus")]] == [10]

        levels = [(b["user_id"], b["badge"], b["kind"]) for b in badges if b["kind"] == "level"]
        assert levels == [("eve", "communicator", "level")]
        # Task badges, with the period each counted in; no achievement (no lifetime threshold is reached).
        days = [(MONDAY + timedelta(days=d)).isoformat() for d in range(7)]
        week = f"{iso.year}-W{iso.week:02d}"
        tasks = sorted((b["user_id"], b["badge"], b["period"]) for b in badges if b["kind"] == "task")
        assert tasks == sorted(
            [
                ("alice", "daily_messages", days[0]),
                ("alice", "daily_likes", days[0]),
                ("alice", "weekly_vote", week),
                *[("bob", "daily_messages", days[d]) for d in range(6)],
                ("carol", "daily_feed_view", days[2]),
                ("carol", "weekly_vote", week),
                *[("eve", "daily_messages", days[d]) for d in range(5)],
            ]
        )
        assert {b["kind"] for b in badges} == {"level", "task"}
        assert len({b["award_id"] for b in badges}) == len(badges)
        # Each task badge comes with its points, in the same period.
        task_points = sorted(
            (a["user_id"], a["rule"], a["period"]) for a in points if a["rule"] in {t[1] for t in tasks}
        )
        assert task_points == tasks
        assert {a["points"] for a in points if a["rule"].startswith("daily_")} == {5}
        assert {a["points"] for a in points if a["rule"].startswith("weekly_v")} == {30}

        # Dead letters carry the original coordinates and the raw value.
        bad_json = next(d for d in dead if d["reason"] == "not_json")
        assert bad_json["topic"] == topics.source("message")
        assert bad_json["value"] == "not json{"
        too_late = next(d for d in dead if d["reason"] == "too_late")
        assert too_late["topic"] == topics.source("message")

        # Every output record follows its published schema.
        for name, records in (
            ("rewards.points", points),
            ("rewards.badges", badges),
            ("rewards.deadletter", dead),
        ):
            validator = jsonschema.Draft202012Validator(_schema(name))
            for record in records:
                validator.validate(record)

        # The query API agrees with the awards, and some users were re-routed.
        assert worker.get("/users/alice")["points"] == 98
        assert worker.get("/users/eve")["level"] == "communicator"
        metrics = worker.metrics()
        forwarded = sum(v for k, v in metrics.items() if 'outcome="forwarded"' in k)
        assert forwarded > 0
        assert metrics['stream_deadletters_total{reason="too_late"}'] == 1
    finally:
        worker.stop()
