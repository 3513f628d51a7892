"""Read a worker's outputs back from Kafka and compare them with the model's expected awards."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from chaos.model import Expected

COUNTED = ("granted", "activated", "revoked")  # SPEC: the statuses a balance sums


@dataclass(frozen=True, slots=True)
class Out:
    """One output record as read: where it sits, its raw value and its size."""

    partition: int
    offset: int
    value: bytes | None


def read_topic(
    bootstrap: str, topic: str, *, committed_only: bool = True, timeout: float = 60.0
) -> list[Out]:
    """Read ``topic`` from the start to its end, as a ``read_committed`` consumer unless told otherwise.

    The end is where every partition reports EOF (control records of transactions never arrive as
    messages, so counting up to the high watermark would wait for them). Raises TimeoutError when the
    end is not reached within ``timeout`` seconds.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
            "fetch.message.max.bytes": 8 << 20,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        pending = set(meta.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        out: list[Out] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: partitions {sorted(pending)} not read to the end in {timeout} s"
                )
            for message in consumer.consume(10_000, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    continue
                out.append(Out(message.partition() or 0, message.offset() or 0, message.value()))
        return out
    finally:
        consumer.close()


def committed_lag(bootstrap: str, group: str, topics: Iterable[str]) -> int:
    """Return how many records of ``topics`` the consumer group has not committed yet."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        lag = 0
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            tps = [TopicPartition(topic, p) for p in meta.partitions]
            for tp in consumer.committed(tps, timeout=10):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
                lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


@dataclass
class Verdict:
    """The comparison of what a worker emitted with what the model expects."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int = 0  # output records read, duplicates included

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """Return the details part of the fault's one line."""
        return "; ".join(self.problems + self.notes)


def _diff(kind: str, got: dict[Any, int], want: dict[Any, int], limit: int = 3) -> str | None:
    keys = sorted({k for k in got.keys() | want.keys() if got.get(k, 0) != want.get(k, 0)}, key=str)
    if not keys:
        return None
    shown = ", ".join(f"{k}: got {got.get(k, 0)} want {want.get(k, 0)}" for k in keys[:limit])
    return f"{len(keys)} {kind} differ ({shown}{', ...' if len(keys) > limit else ''})"


def compare(
    bootstrap: str, points_topic: str, badges_topic: str, expected: Expected, *, exactly_once: bool
) -> Verdict:
    """Read the award topics and compare them with ``expected``.

    Checks: each user's balance (SPEC: points of granted, activated and revoked awards, each award id
    once) and the points and award count of every (user, rule); no award id with two different
    contents (the whole JSON value); every challenge award by its id, with its user, rule, points,
    period and ``ts``; task, achievement and title badges per (user, badge) (the chaos rules have no
    boards, so a title is unexpected); level badges per user; under ``exactly_once`` no award id twice.
    """
    verdict = Verdict()
    points = read_topic(bootstrap, points_topic)
    badges = read_topic(bootstrap, badges_topic)
    verdict.records = len(points) + len(badges)
    contents: dict[str, Any] = {}
    copies: Counter[str] = Counter()
    conflicts: list[str] = []
    unreadable = 0
    for out in points + badges:
        try:
            value = orjson.loads(out.value or b"")
            the_id = value["award_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            unreadable += 1
            continue
        copies[the_id] += 1
        first = contents.setdefault(the_id, value)
        if first != value and len(conflicts) < 3:
            conflicts.append(f"{the_id}: {orjson.dumps(first).decode()} vs {orjson.dumps(value).decode()}")
    if unreadable:
        verdict.problems.append(f"{unreadable} output records are not awards")
    if conflicts:
        verdict.problems.append(f"award ids with two contents (e.g. {conflicts[0]})")
    duplicates = sum(n - 1 for n in copies.values() if n > 1)
    if duplicates:
        (verdict.problems if exactly_once else verdict.notes).append(
            f"{duplicates} duplicate award records ({sum(1 for n in copies.values() if n > 1)} ids)"
        )

    got_points: dict[tuple[str, str], int] = defaultdict(int)
    got_awards: Counter[tuple[str, str]] = Counter()
    got_levels: dict[str, set[str]] = defaultdict(set)
    got_badges: Counter[tuple[str, str]] = Counter()
    got_challenges: dict[str, tuple[str, str, int, str, int]] = {}
    for the_id, value in contents.items():
        if "badge" in value:
            if value.get("kind") == "level":
                got_levels[value["user_id"]].add(value["badge"])
            elif value.get("kind") in ("task", "achievement", "title"):
                got_badges[(value["user_id"], value["badge"])] += 1
            continue
        if value.get("rule") in expected.challenge_rules:
            got_challenges[the_id] = challenge_entry(value)
        if value.get("status") in COUNTED:
            got_points[(value["user_id"], value["rule"])] += value["points"]
        got_awards[(value["user_id"], value["rule"])] += 1
    totals: dict[str, int] = defaultdict(int)
    for (user, _), pts in got_points.items():
        totals[user] += pts
    want_totals = expected.totals()
    differences = [
        problem
        for problem in (
            _diff("user totals", {u: p for u, p in totals.items() if p}, want_totals),
            _diff("(user, rule) points", got_points, expected.points),
            _diff("(user, rule) award counts", got_awards, expected.awards),
            _diff("(user, badge) task, achievement and title badges", got_badges, expected.badges),
        )
        if problem
    ]
    challenge_problem = diff_challenges(got_challenges, expected.challenges)
    if challenge_problem:
        differences.append(challenge_problem)
    wrong_levels = sorted(
        u
        for u in got_levels.keys() | expected.levels.keys()
        if got_levels.get(u, set()) != expected.levels.get(u, set())
    )
    if wrong_levels:
        u = wrong_levels[0]
        differences.append(
            f"{len(wrong_levels)} users with other level badges (e.g. {u}: got "
            f"{sorted(got_levels.get(u, set()))} want {sorted(expected.levels.get(u, set()))})"
        )
    if differences:
        verdict.problems[:0] = differences
    else:
        verdict.notes.insert(
            0,
            f"totals exact: {len(want_totals)} users, {sum(want_totals.values())} points, "
            f"{expected.award_count()} awards ({challenge_summary(expected)})",
        )
    return verdict


def challenge_entry(value: dict[str, Any]) -> tuple[str, str, int, str, int]:
    """Return what a challenge award is compared by: (user, rule, points, period, ts), status granted."""
    points = value["points"] if value.get("status") == "granted" else 0
    return (value["user_id"], value["rule"], points, value["period"], value["ts"])


def diff_challenges(
    got: dict[str, tuple[str, str, int, str, int]], want: dict[str, tuple[str, str, int, str, int]]
) -> str | None:
    """Describe how the challenge awards differ from the expected ones by award id, or None."""
    missing = [i for i in want if i not in got]
    extra = [i for i in got if i not in want]
    other = [i for i in want if i in got and got[i] != want[i]]
    if not (missing or extra or other):
        return None
    shown = [f"missing {want[i]}" for i in missing[:2]] + [f"unexpected {got[i]}" for i in extra[:2]]
    shown += [f"got {got[i]} want {want[i]}" for i in other[:2]]
    return (
        f"challenge awards differ: {len(missing)} missing, {len(extra)} unexpected, {len(other)} other "
        f"(e.g. {'; '.join(shown)})"
    )


def challenge_summary(expected: Expected) -> str:
    """Return how many challenge awards the model expects, by rule."""
    by_rule = Counter(rule for _, rule, _, _, _ in expected.challenges.values())
    return (
        ", ".join(f"{rule} {by_rule[rule]}" for rule in sorted(expected.challenge_rules)) or "no challenges"
    )
