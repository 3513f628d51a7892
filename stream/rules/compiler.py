"""Compile one version of the rules into plain tables the engine runs per fact: no ``eval``, no lookups by name.

For each fact and side (actor or target) the compiled ``Plan`` lists the counters it moves (each with the
threshold rules watching it) and the rules that pay points per fact. Filters become small closures over the
fact's fields; campaign windows and effective dates become epoch milliseconds in the configured time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from fractions import Fraction
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from stream.engine.layout import COUNT, DISTINCT, DONE, PAID
from stream.rules.invites import InviteRules, compile_invites
from stream.rules.model import CAMPAIGN_PREFIX, Rules, Scalar

Fields = dict[str, Any]
Filter = Callable[[Fields], bool] | None
Where = dict[str, Scalar | list[Scalar]]


def epoch_ms(moment: datetime, zone: ZoneInfo) -> int:
    """Return epoch milliseconds of ``moment``; without an offset it is a local time in ``zone``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1000)


def _filter(where: Where) -> Filter:
    """Return a test of a fact's fields for ``where`` (every field must match), or None for no filter."""
    if not where:
        return None
    tests: list[tuple[str, frozenset[Any]]] = []
    for name, allowed in where.items():
        values = allowed if isinstance(allowed, list) else [allowed]
        # bool is an int in Python: keep True apart from 1 by pairing each value with its type
        tests.append((name, frozenset((type(v), v) for v in values)))
    if len(tests) == 1:
        ((name, allowed_set),) = tests

        def one(fields: Fields) -> bool:
            value = fields.get(name)
            return (type(value), value) in allowed_set

        return one

    def every(fields: Fields) -> bool:
        for name, allowed_set in tests:
            value = fields.get(name)
            if (type(value), value) not in allowed_set:
                return False
        return True

    return every


@dataclass(frozen=True, slots=True)
class Campaign:
    """A multiplier on some rules between two event times."""

    name: str
    title: str
    start_ms: int
    end_ms: int
    multiplier: Fraction


@dataclass(frozen=True, slots=True)
class Threshold:
    """Pay once per period when a counter first reaches ``threshold``."""

    name: str
    title: str
    threshold: int
    points: int
    badge: str | None
    badge_kind: str | None
    per: str | None  # a streak's period of payment; None: the counter's own period
    done: str  # the record entry marking it paid
    campaigns: tuple[Campaign, ...] = ()


@dataclass(frozen=True, slots=True)
class CounterStep:
    """Move one counter for a fact, then check the thresholds that watch it."""

    name: str
    title: str
    test: Filter
    per: str  # day | week | month | lifetime | campaign | streak
    campaign: Campaign | None
    distinct: str | None
    entry: str  # the record entry holding the count (or the distinct values)
    thresholds: tuple[Threshold, ...]
    where: Where = field(default_factory=dict, compare=False)  # the source of ``test``


@dataclass(frozen=True, slots=True)
class PointStep:
    """Pay points for a fact, within caps per period, multiplied by the campaigns running at its time."""

    name: str
    title: str
    test: Filter
    points: int
    caps: tuple[tuple[str, int], ...]  # (day | week | month, most points per period)
    campaigns: tuple[Campaign, ...]
    paid: str  # the record entry of points paid
    where: Where = field(default_factory=dict, compare=False)  # the source of ``test``


Step = TypeVar("Step", PointStep, CounterStep)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one fact seen from one side does.

    Steps filtered on one value of ``key_field`` alone (``where: {kind: text}``) are found by that value in
    ``keyed`` instead of testing each in turn; the others are in ``points`` and ``counters``.
    """

    counters: tuple[CounterStep, ...] = ()
    points: tuple[PointStep, ...] = ()
    key_field: str | None = None
    keyed: dict[tuple[type, Any], tuple[tuple[PointStep, ...], tuple[CounterStep, ...]]] = field(
        default_factory=dict
    )


@dataclass(frozen=True, slots=True)
class Challenge:
    """Pay a group's (per week) or a team's (per month) people once when its count reaches ``threshold``."""

    name: str
    title: str
    owner: str  # group | team
    per: str  # week | month
    threshold: int
    points: int


@dataclass(frozen=True, slots=True)
class Board:
    """A weekly board: how a contestant scores, and the title its winner gets."""

    name: str
    title: str
    score: str  # received | newcomer_points | group_interactions
    facts: frozenset[str]
    joined_within_ms: int


@dataclass(frozen=True)
class CompiledRules:
    """One version of the rules, ready to run."""

    version: str
    effective_from_ms: int
    retention_ms: int
    max_future_ms: int
    like_pair_daily_limit: int
    group_min_invited: int
    plans: dict[tuple[str, str], Plan]  # (fact, "actor" | "target") -> plan
    levels: tuple[tuple[str, int], ...]
    campaigns: tuple[Campaign, ...]
    group_facts: frozenset[str]  # facts that count as interactions of their group
    team_facts: frozenset[str]  # facts that count toward their team's month
    challenges: tuple[Challenge, ...]
    boards: tuple[Board, ...]
    grace_ms: int  # a week's boards close once an event this far past its end is seen
    received_boards: dict[str, tuple[str, ...]]  # fact -> the boards scoring it on the receiver's side
    newcomer_boards: tuple[Board, ...]
    social: bool  # whether events count for groups, teams or boards at all
    invites: InviteRules
    source: Rules = field(repr=False)
    text: str = field(default="", repr=False)


DAY_MS = 86_400_000


def compile_rules(rules: Rules, zone: ZoneInfo, text: str = "") -> CompiledRules:
    """Compile a validated rules version for a time zone."""
    campaigns = {
        name: Campaign(
            name,
            spec.title or name,
            epoch_ms(spec.start, zone),
            epoch_ms(spec.end, zone),
            Fraction(spec.multiplier),
        )
        for name, spec in rules.campaigns.items()
    }

    def running(rule_name: str) -> tuple[Campaign, ...]:
        return tuple(c for c in campaigns.values() if rule_name in rules.campaigns[c.name].rules)

    watching: dict[str, list[Threshold]] = {}
    for name, rule in rules.rules.items():
        if rule.counter is None or not rule.enabled:
            continue
        assert rule.threshold is not None
        badge = (rule.badge.name or name) if rule.badge else None
        watching.setdefault(rule.counter, []).append(
            Threshold(
                name,
                rule.title or name,
                rule.threshold,
                rule.points,
                badge,
                rule.badge.kind if rule.badge else None,
                rule.per,
                DONE + name,
                running(name),
            )
        )
    counters: dict[tuple[str, str], list[CounterStep]] = {}
    for name, spec in rules.counters.items():
        per = "streak" if spec.streak else str(spec.per)
        campaign = None
        if per.startswith(CAMPAIGN_PREFIX):
            campaign = campaigns[per[len(CAMPAIGN_PREFIX) :]]
            per = "campaign"
        step = CounterStep(
            name,
            spec.title or spec.fact,
            _filter(spec.where),
            per,
            campaign,
            spec.distinct,
            (DISTINCT if spec.distinct else COUNT) + name,
            tuple(sorted(watching.get(name, []), key=lambda t: (t.threshold, t.name))),
            spec.where,
        )
        counters.setdefault((spec.fact, spec.receiver), []).append(step)
    points: dict[tuple[str, str], list[PointStep]] = {}
    for name, rule in rules.rules.items():
        if rule.fact is None or not rule.enabled or rule.points <= 0:
            continue
        caps = tuple((period, rule.cap[period]) for period in ("day", "week", "month") if period in rule.cap)
        points.setdefault((rule.fact, rule.receiver), []).append(
            PointStep(
                name,
                rule.title or name,
                _filter(rule.where),
                rule.points,
                caps,
                running(name),
                PAID + name,
                rule.where,
            )
        )
    plans = {key: _plan(points.get(key, []), counters.get(key, [])) for key in sorted({*counters, *points})}
    boards = tuple(
        Board(name, spec.title or name, spec.score, frozenset(spec.facts), spec.joined_within_days * DAY_MS)
        for name, spec in rules.boards.items()
        if spec.enabled
    )
    received: dict[str, tuple[str, ...]] = {}
    for board in boards:
        for fact in sorted(board.facts) if board.score == "received" else ():
            received[fact] = (*received.get(fact, ()), board.name)
    return CompiledRules(
        version=rules.version,
        effective_from_ms=epoch_ms(rules.effective_from, zone),
        retention_ms=rules.time.retention_days * DAY_MS,
        max_future_ms=rules.time.max_future_minutes * 60_000,
        like_pair_daily_limit=rules.anti_gaming.like_pair_daily_limit,
        group_min_invited=rules.anti_gaming.group_min_invited,
        plans=plans,
        levels=tuple((level.name, level.min_points) for level in rules.levels),
        campaigns=tuple(campaigns.values()),
        group_facts=frozenset(rules.groups.interactions),
        team_facts=frozenset(rules.teams.counts),
        challenges=tuple(
            Challenge(name, spec.title or name, spec.owner, spec.per, spec.threshold, spec.points)
            for name, spec in rules.challenges.items()
            if spec.enabled
        ),
        boards=boards,
        grace_ms=rules.time.board_grace_minutes * 60_000,
        received_boards=received,
        newcomer_boards=tuple(board for board in boards if board.score == "newcomer_points"),
        social=bool(boards or rules.groups.interactions or rules.teams.counts),
        invites=compile_invites(rules.invites),
        source=rules,
        text=text,
    )


def _plan(points: list[PointStep], counters: list[CounterStep]) -> Plan:
    """Return a fact's plan, with the steps filtered on one field's values looked up by value."""
    wheres: list[Where] = [step.where for step in points] + [step.where for step in counters]
    single = [next(iter(where)) for where in wheres if len(where) == 1]
    if not single:
        return Plan(tuple(counters), tuple(points))
    key_field = max(sorted(set(single)), key=single.count)
    keyed_points, rest_points = _by_value(points, key_field)
    keyed_counters, rest_counters = _by_value(counters, key_field)
    keyed = {
        value: (tuple(keyed_points.get(value, ())), tuple(keyed_counters.get(value, ())))
        for value in {*keyed_points, *keyed_counters}
    }
    return Plan(tuple(rest_counters), tuple(rest_points), key_field, keyed)


def _by_value(steps: list[Step], key_field: str) -> tuple[dict[tuple[type, Any], list[Step]], list[Step]]:
    """Split steps into those filtered on ``key_field`` alone, by each allowed value (typed), and the rest."""
    keyed: dict[tuple[type, Any], list[Step]] = {}
    rest: list[Step] = []
    for step in steps:
        if list(step.where) == [key_field]:
            allowed = step.where[key_field]
            for value in allowed if isinstance(allowed, list) else [allowed]:
                keyed.setdefault((type(value), value), []).append(replace(step, test=None))
        else:
            rest.append(step)
    return keyed, rest
