"""The chaos suite's independent model (chaos/model.py) agrees exactly with the pure pipeline.

Generated traffic (with re-deliveries and the chaos edge cases) goes through ``Pipeline`` over four
partitions and an in-memory store, under the chaos rules (chaos/rules.yaml: the defaults without boards),
every input record on its key's partition. Everything the pipeline sends to the internal topic (credits,
forwarded records, group joins and counts, team counts and roster changes, grants) is delivered back on
its partition, in order per partition, as the worker's internal topic would, until nothing more is sent.
The awards it emits, read like chaos/check.py reads the output topics, must equal the model's per user,
per (user, rule), per (user, badge), and every challenge award by its id.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml

from chaos.check import challenge_entry, diff_challenges
from chaos.model import CHAOS_RULES, DEFAULT_RULES, Expected, expect
from chaos.traffic import traffic
from stream import feed
from stream.core.state import MemoryStore, StateCache
from stream.engine.layout import decode_value, encode_value
from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.pipeline import Pipeline, Record, Topics, partition_for
from stream.rules import load_rules
from stream.rules.versions import RuleBook

TZ = "Asia/Shanghai"
DAY_MS = 86_400_000
PARTITIONS = 4
SOURCES = ("message", "like", "login", "activity", "member", "invite")
TOPICS = Topics(
    sources={f"in.{s}": s for s in SOURCES},
    routed="int.routed",
    points="out.points",
    badges="out.badges",
    deadletter="out.dead",
)


def run_pipeline(
    records: list[tuple[str, Any, Any]], rules_file: Path = CHAOS_RULES, batch: int = 500
) -> list[dict[str, Any]]:
    """Run ``records`` through the pure pipeline, internal messages fed back; return the awards emitted.

    Each round takes the next ``batch`` input records and up to ``batch`` routed ones (oldest first).
    """
    engine = Engine(RuleBook.of(load_rules(rules_file), ZoneInfo(TZ)), Calendar(TZ))
    store = MemoryStore()
    cache = StateCache(store, decode_value, encode_value)
    pipeline = Pipeline(engine, TOPICS, PARTITIONS, lambda: int(time.time() * 1000), cache)
    offsets = iter(range(1 << 62))  # growing on every partition, as Kafka's offsets are
    inputs = deque(
        Record(
            f"in.{source}",
            partition_for(str(key).encode(), PARTITIONS),
            next(offsets),
            str(key).encode(),
            None if value is None else orjson.dumps(value),
            0,
        )
        for source, key, value in records
    )
    routed: deque[Record] = deque()
    awards: list[dict[str, Any]] = []
    while inputs or routed:
        chunk = [inputs.popleft() for _ in range(min(batch, len(inputs)))]
        chunk += [routed.popleft() for _ in range(min(batch, len(routed)))]
        out = pipeline.run(chunk)
        for key, (partition, raw) in out.changes.items():
            store.write(partition, {key: raw})
        for o in out.outputs:
            if o.topic in (TOPICS.points, TOPICS.badges):
                awards.append(orjson.loads(o.value or b""))
            elif o.topic == TOPICS.routed:
                assert o.key is not None
                partition = o.partition if o.partition is not None else partition_for(o.key, PARTITIONS)
                routed.append(Record(o.topic, partition, next(offsets), o.key, o.value, 0))
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
    challenges: dict[str, tuple[str, str, int, str, int]] = {}
    for the_id, value in contents.items():
        if "badge" in value:
            if value["kind"] == "level":
                levels[value["user_id"]].add(value["badge"])
            else:
                badges[(value["user_id"], value["badge"])] += 1
            continue
        assert value["reason"], value
        if value["rule"] in expected.challenge_rules:
            challenges[the_id] = challenge_entry(value)
        if value["status"] in ("granted", "activated", "revoked"):  # what a balance sums
            points[(value["user_id"], value["rule"])] += value["points"]
        counts[(value["user_id"], value["rule"])] += 1
    totals: dict[str, int] = defaultdict(int)
    for (user, _), p in points.items():
        totals[user] += p
    assert dict(totals) == expected.totals()
    assert {k: v for k, v in points.items() if v} == {k: v for k, v in expected.points.items() if v}
    assert counts == expected.awards
    assert badges == expected.badges
    assert dict(levels) == expected.levels
    assert diff_challenges(challenges, expected.challenges) is None, diff_challenges(
        challenges, expected.challenges
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_model_agrees_with_the_pipeline_on_chaos_traffic(seed: int) -> None:
    records = traffic(3000, seed)
    expected = expect(records)
    # the edge groups: exactly 500 pays its 11 users (not the one only liked); 499 pays nobody
    paid: dict[str, set[str]] = defaultdict(set)
    for user, rule, points, _, _ in expected.challenges.values():
        assert (rule, points) == ("group_weekly_500", 50)
        if user.startswith(f"edge{seed}-"):
            paid[user.removeprefix(f"edge{seed}-").rstrip("0123456789")].add(user)
    assert dict(paid) == {"exact": {f"edge{seed}-exact{i}" for i in (*range(10), 11)}}
    compare(run_pipeline(records), expected)


def test_model_agrees_on_the_group_challenge_at_chaos_scale() -> None:
    """The chaos run's size: groups reach 500 interactions in a week, teams stay below 10,000 a month."""
    records = traffic(30_000, 2026)
    expected = expect(records)
    assert expected.by_rule()["group_weekly_500"] > 100
    assert expected.by_rule()["team_monthly_10000"] == 0
    compare(run_pipeline(records), expected)


def test_model_agrees_on_both_challenges_at_lower_thresholds(tmp_path: Path) -> None:
    """Teams and groups crossing mid-stream, with a roster that lost a member and moved one before."""
    doc = yaml.safe_load(CHAOS_RULES.read_text(encoding="utf-8"))
    doc["challenges"]["group_weekly_500"]["threshold"] = 100
    doc["challenges"]["team_monthly_10000"]["threshold"] = 300
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(doc), encoding="utf-8")
    now = int(time.time() * 1000)
    records: list[tuple[str, Any, Any]] = list(
        feed.generate(
            4000, users=60, teams=4, groups=20, seed=3, start_ms=now - 9 * DAY_MS, span_ms=8 * DAY_MS
        )
    )
    members = [r for r in records if r[0] == "member"]
    left, moved = members[0][1], members[1][1]
    other = next(r[2]["team_id"] for r in members if r[2]["team_id"] != members[1][2]["team_id"])
    changes = [("member", left, None), ("member", moved, {**members[1][2], "team_id": other})]
    records = members + changes + records[len(members) :]
    expected = expect(records, rules)
    by_rule = expected.by_rule()
    assert by_rule["team_monthly_10000"] > 10 and by_rule["group_weekly_500"] > 10, by_rule
    paid = {user for user, rule, _, _, _ in expected.challenges.values() if rule == "team_monthly_10000"}
    assert left not in paid
    compare(run_pipeline(records, rules), expected)


def test_the_chaos_rules_are_the_defaults_without_boards() -> None:
    chaos = yaml.safe_load(CHAOS_RULES.read_text(encoding="utf-8"))
    default = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    assert chaos.pop("boards") == {} and default.pop("boards")
    assert chaos.pop("version") == default.pop("version") + "-chaos"
    assert chaos == default
    assert not load_rules(CHAOS_RULES).boards


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
