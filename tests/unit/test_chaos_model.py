"""The chaos suite's independent model (chaos/model.py) agrees exactly with the pure pipeline.

Generated traffic (with re-deliveries and the chaos edge cases) goes through ``Pipeline`` on one partition
over an in-memory ``StateCache``, with the credits it emits fed back as the worker's routed topic would;
the awards it emits, read like chaos/check.py reads the output topics, must equal the model's per user,
per (user, rule) and per (user, badge).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from chaos.model import Expected, expect
from chaos.traffic import traffic
from stream import feed
from stream.core.state import MemoryStore, StateCache
from stream.engine.layout import decode_value, encode_value
from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.pipeline import Pipeline, Record, Topics
from stream.rules import load_rules
from stream.rules.versions import RuleBook
from tests.unit.support import personal_only

TZ = "Asia/Shanghai"
DAY_MS = 86_400_000
SOURCES = ("message", "like", "login", "activity", "member")
TOPICS = Topics(
    sources={f"in.{s}": s for s in SOURCES},
    routed="int.routed",
    points="out.points",
    badges="out.badges",
    deadletter="out.dead",
)


def run_pipeline(records: list[tuple[str, Any, Any]], batch: int = 500) -> list[dict[str, Any]]:
    """Run ``records`` through the pure pipeline, credits fed back; return the award records emitted."""
    # the model covers the per-user programme (groups, teams and boards: tests/unit/domains)
    engine = Engine(RuleBook.of(personal_only(load_rules()), ZoneInfo(TZ)), Calendar(TZ))
    cache = StateCache(MemoryStore(), decode_value, encode_value)
    pipeline = Pipeline(engine, TOPICS, 1, lambda: int(time.time() * 1000), cache)
    queue = [
        Record(f"in.{source}", 0, i, str(key).encode(), orjson.dumps(value), 0)
        for i, (source, key, value) in enumerate(records)
    ]
    awards: list[dict[str, Any]] = []
    offset = 0
    while queue:
        chunk, queue = queue[:batch], queue[batch:]
        out = pipeline.run(chunk)
        for o in out.outputs:
            if o.topic in (TOPICS.points, TOPICS.badges):
                awards.append(orjson.loads(o.value or b""))
            elif o.topic == TOPICS.routed:
                offset += 1
                queue.append(Record(o.topic, 0, offset, o.key, o.value, 0))
            else:
                raise AssertionError(f"unexpected output to {o.topic}: {o.value!r}")
    return awards


def compare(awards: list[dict[str, Any]], expected: Expected) -> None:
    """Assert the awards equal the model's (as chaos/check.py compares them)."""
    contents: dict[str, dict[str, Any]] = {}
    for value in awards:
        assert contents.setdefault(value["award_id"], value) == value
    points: dict[tuple[str, str], int] = defaultdict(int)
    counts: Counter[tuple[str, str]] = Counter()
    badges: Counter[tuple[str, str]] = Counter()
    levels: dict[str, set[str]] = defaultdict(set)
    for value in contents.values():
        if "badge" in value:
            if value["kind"] == "level":
                levels[value["user_id"]].add(value["badge"])
            else:
                badges[(value["user_id"], value["badge"])] += 1
            continue
        assert value["reason"], value
        points[(value["user_id"], value["rule"])] += value["points"]
        counts[(value["user_id"], value["rule"])] += 1
    totals: dict[str, int] = defaultdict(int)
    for (user, _), p in points.items():
        totals[user] += p
    assert dict(totals) == expected.totals()
    assert dict(points) == {k: v for k, v in expected.points.items() if v}
    assert counts == expected.awards
    assert badges == expected.badges
    assert dict(levels) == expected.levels


@pytest.mark.parametrize("seed", [1, 2])
def test_model_agrees_with_the_pipeline_on_chaos_traffic(seed: int) -> None:
    records = traffic(3000, seed)
    expected = expect(records)
    compare(run_pipeline(records), expected)


@pytest.mark.parametrize(("users", "shuffled"), [(12, False), (12, True), (3, True)])
def test_model_agrees_on_a_few_heavy_users_over_weeks(users: int, shuffled: bool) -> None:
    """Few users over three weeks: login streaks across week boundaries, lifetime achievements.

    Shuffled, every event is late or early to some other: the totals must not depend on the order.
    """
    now = int(time.time() * 1000)
    records = list(
        feed.generate(5000, users=users, groups=8, seed=5, start_ms=now - 22 * DAY_MS, span_ms=21 * DAY_MS)
    )
    if shuffled:
        members = [r for r in records if r[0] == "member"]
        events = [r for r in records if r[0] != "member"]
        random.Random(users).shuffle(events)
        records = members + events
    expected = expect(records)
    by_rule = expected.by_rule()
    wanted = ["weekly_login_streak", "daily_likes", "weekly_groups", "daily_feed_view", "weekly_vote"]
    wanted += ["likes_received_100", "groups_created_5"] + (["messages_1000"] if users < 5 else [])
    for rule in wanted:
        assert by_rule[rule] > 0, rule
    compare(run_pipeline(records), expected)
