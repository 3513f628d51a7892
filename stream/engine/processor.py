"""Apply the rules to one event in one transaction over its user's keys: awards and credits out.

Pure: no Kafka, no clock. The caller opens the transaction (stream/core/state.py), commits it when
``apply`` returns and rolls it back when it raises, so a failing event leaves no change behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from stream.core.state import Transaction
from stream.engine.awards import BadgeAward, PointAward, award_id
from stream.engine.credits import Credit
from stream.engine.facts import Fact, credit_fact, make_facts
from stream.engine.fingerprints import Fingerprints, fingerprint
from stream.engine.layout import CORE, FORMAT, SEEN, SEPARATOR, check_core, new_core
from stream.engine.migrate import migrate_legacy
from stream.engine.periods import LIFETIME, Calendar, Day
from stream.engine.reasons import per_fact_reason, threshold_reason
from stream.engine.retention import advance, seen_before
from stream.events import Activity, Event, Invite, Like, Login, Member, MemberLeft, Message
from stream.rules.compiler import Campaign, CompiledRules, CounterStep, PointStep, Threshold
from stream.rules.versions import RuleBook

APPLIED = "applied"
DUPLICATE = "duplicate"
IGNORED = "ignored"
TOO_LATE = "too_late"


@dataclass(slots=True)
class Outcome:
    """What one event did: its status, the awards and credits it produced."""

    status: str = APPLIED
    reason: str | None = None
    points: list[PointAward] = field(default_factory=list)
    badges: list[BadgeAward] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)


class Engine:
    """The rule engine: the versions of the rules, the calendar, and the state layout of a user."""

    def __init__(self, book: RuleBook, calendar: Calendar) -> None:
        self.book = book
        self.calendar = calendar

    def apply(self, event: Event | Credit, tx: Transaction, user_key: bytes) -> Outcome:
        """Apply one event (or credit) of the user ``user_key`` within ``tx`` and return what it did."""
        p = user_key + SEPARATOR  # layout.prefix, inline: once per event
        core_key = p + CORE
        core = tx.get(core_key)
        if core is None:
            core = migrate_legacy(tx, user_key, self.calendar)
        elif core.get("v") != FORMAT:
            check_core(core, user_key)
        kind = type(event)
        if kind is Member or kind is MemberLeft:
            core = tx.edit(core_key, new_core)
            if isinstance(event, Member):
                core["roster"] = [event.team_id, event.joined_at]
                core["left"] = False
            else:
                core["left"] = True
            return Outcome()
        if kind is Invite:
            raise TypeError("invitation events are not handled by this engine")
        return self._scored(event, tx, p, core_key, core)  # type: ignore[arg-type]

    def _scored(
        self,
        event: Message | Like | Login | Activity | Credit,
        tx: Transaction,
        p: bytes,
        core_key: bytes,
        core: dict[str, Any] | None,
    ) -> Outcome:
        ts = event.ts
        day = self.calendar.day_of(ts)
        retention = self.book.retention_ms
        if core is not None and day.end_ms + retention <= core["wm"]:
            return Outcome(status=TOO_LATE, reason=f"day {day.name} is past the retention")
        fp = fingerprint(event.event_id)
        if core is not None and seen_before(tx, p, core, fp, self.calendar):
            return Outcome(status=DUPLICATE)
        core = tx.edit(core_key, new_core)
        advance(tx, p, core, day, ts, retention, self.calendar)
        rules = self.book.at(ts)
        ctx = _Context(self, rules, tx, p, core, day, event)
        day_record = ctx.record("day")
        seen = day_record.get(SEEN)
        day_record[SEEN] = (seen if seen is not None else Fingerprints()).plus(fp)
        if isinstance(event, Credit):
            ctx.run(credit_fact(event))
        else:
            if core["team"] != event.team_id:
                core["team"] = event.team_id
            made = make_facts(event, day_record, rules.like_pair_daily_limit, rules.group_min_invited)
            if made.ignored is not None:
                ctx.out.status, ctx.out.reason = IGNORED, made.ignored
            for fact in made.facts:
                ctx.run(fact)
            ctx.out.credits = made.credits
        if ctx.out.points:
            ctx.check_level()
        return ctx.out


class _Context:
    """One event's working set: the rules in effect, its records, and the awards it makes."""

    __slots__ = (
        "core",
        "day",
        "engine",
        "event",
        "out",
        "own",
        "p",
        "records",
        "rules",
        "source",
        "team",
        "tx",
        "user",
    )

    def __init__(
        self,
        engine: Engine,
        rules: CompiledRules,
        tx: Transaction,
        p: bytes,
        core: dict[str, Any],
        day: Day,
        event: Message | Like | Login | Activity | Credit,
    ) -> None:
        self.engine, self.rules, self.tx, self.p, self.core, self.day = engine, rules, tx, p, core, day
        self.event = event
        self.out = Outcome()
        self.records: dict[bytes, dict[str, Any]] = {}
        self.own: dict[str, dict[str, Any]] = {}  # the records of the event's own periods, by period
        self.user: str = event.user_id
        if type(event) is Credit:
            self.source: str = event.source_event_id
            # The receiver's team when known (own events, else the roster); else the sender's, in the award only.
            roster = core["roster"]
            team = core["team"] or (roster[0] if roster else None)
            self.team: str = team if team is not None else event.team_id
        else:
            self.source = event.event_id
            self.team = event.team_id

    # --- records of periods -----------------------------------------------------------------------

    def record(self, per: str, day: Day | None = None, campaign: Campaign | None = None) -> dict[str, Any]:
        """Return the changeable record of a period of ``day`` (default: the event's day)."""
        if day is None and campaign is None:
            record = self.own.get(per)
            if record is None:
                record = self.own[per] = self.core if per == "lifetime" else self._record(per, self.day, None)
            return record
        return self._record(per, day or self.day, campaign)

    def _record(self, per: str, day: Day, campaign: Campaign | None) -> dict[str, Any]:
        if per == "day":
            key = self.p + day.day_key
        elif per == "week":
            key = self.p + day.week_key
            self._keep("weeks", day.week, day.week_end_ms)
        elif per == "month":
            key = self.p + day.month_key
            self._keep("months", day.month, day.month_end_ms)
        elif per == "lifetime":
            return self.core  # the lifetime record is the core record: it changes with every event anyway
        else:
            assert campaign is not None
            key = self.p + b"c:" + campaign.name.encode()
            self._keep("campaigns", campaign.name, campaign.end_ms)
        record = self.records.get(key)
        if record is None:
            record = self.records[key] = self.tx.edit(key)
        return record

    def _keep(self, kind: str, name: str, end_ms: int) -> None:
        core = self.core
        kept: dict[str, int] = core[kind]
        if name not in kept:
            core[kind] = {**kept, name: end_ms}  # replaced, never changed in place (copy on write)
            if not 0 < core["px"] <= end_ms:
                core["px"] = end_ms

    def period_name(self, per: str, day: Day, campaign: Campaign | None = None) -> str:
        """Return the name of the period an award counted in."""
        if per == "day":
            return day.name
        if per == "week":
            return day.week
        if per == "month":
            return day.month
        if per == "lifetime":
            return LIFETIME
        assert campaign is not None
        return "campaign:" + campaign.name

    # --- running a fact ---------------------------------------------------------------------------

    def run(self, fact: Fact) -> None:
        """Pay the per-fact rules of ``fact``, then move its counters and check their thresholds."""
        plan = self.rules.plans.get((fact.name, fact.side))
        if plan is None:
            return
        fields = fact.fields
        points, counters = plan.points, plan.counters
        if plan.key_field is not None:
            value = fields.get(plan.key_field)
            keyed = plan.keyed.get((type(value), value))
            if keyed is not None:
                points = keyed[0] + points if points else keyed[0]
                counters = keyed[1] + counters if counters else keyed[1]
        for step in points:
            if step.test is None or step.test(fields):
                self._pay(step)
        for counter in counters:
            if counter.test is None or counter.test(fields):
                if counter.per == "streak":
                    self._streak(counter)
                else:
                    self._count(counter, fact)

    def _multiplier(self, campaigns: tuple[Campaign, ...], points: int) -> tuple[int, Campaign | None]:
        ts = self.event.ts
        running = [c for c in campaigns if c.start_ms <= ts < c.end_ms]
        if not running:
            return points, None
        factor = math.prod((c.multiplier for c in running), start=1)
        return math.floor(points * factor), running[0]

    def _pay(self, step: PointStep) -> None:
        points, campaign = (
            (step.points, None) if not step.campaigns else self._multiplier(step.campaigns, step.points)
        )
        capped = None
        for per, cap in step.caps:
            room = cap - self.record(per).get(step.paid, 0)
            if points > room:
                points, capped = room, (per, cap)
        if points <= 0:
            return
        for per, _cap in step.caps:
            record = self.record(per)
            record[step.paid] = record.get(step.paid, 0) + points
        reason = (
            step.title
            if campaign is None and capped is None
            else per_fact_reason(step.title, campaign, capped)
        )
        self._points(step.name, points, self.day.name, award_id(step.name, self.user, self.source), reason)

    def _count(self, counter: CounterStep, fact: Fact) -> None:
        per, campaign = counter.per, counter.campaign
        if campaign is None:
            record = self.own.get(per)
            if record is None:
                record = self.record(per)
        elif campaign.start_ms <= self.event.ts < campaign.end_ms:
            record = self.record(per, campaign=campaign)
        else:
            return
        entry = counter.entry
        if counter.distinct is not None:
            value = fact.fields.get(counter.distinct)
            if value is None:
                return
            values = record.get(entry, ())
            if value in values:
                return
            record[entry] = [*values, value]  # replaced, never changed in place
            n = len(values) + 1
        else:
            n = record.get(entry, 0) + 1
            record[entry] = n
        for threshold in counter.thresholds:
            if n < threshold.threshold:
                break
            if threshold.done not in record:
                record[threshold.done] = 1
                self._reward(threshold, counter, n, self.period_name(per, self.day, campaign))

    def _streak(self, counter: CounterStep) -> None:
        """Add the event's day to the runs of consecutive days; pay the periods whose days newly reach."""
        key = self.p + b"k:" + counter.name.encode()
        runs: list[list[int]] = self.tx.get(key) or []
        o = self.day.ordinal
        start, end = o, o
        kept: list[list[int]] = []
        for a, b in runs:
            if a <= o <= b:
                return  # the day is already in a run
            if b == o - 1:
                start = a
            elif a == o + 1:
                end = b
            else:
                kept.append([a, b])
        horizon = self.engine.calendar.day_of(self.core["wm"] - self.engine.book.retention_ms).ordinal
        kept.append([start, end])
        self.tx.set(key, sorted(run for run in kept if run[1] >= horizon - 1))
        day_for = self.engine.calendar.day_for_ordinal
        for threshold in counter.thresholds:
            # the days whose streak reaches the threshold only now (a late day can join two runs)
            first = max(o, start + threshold.threshold - 1)
            last = min(end, o + threshold.threshold - 1)
            per = threshold.per or "day"
            for ordinal in range(first, last + 1):
                day = day_for(ordinal)
                record = self.record(per, day)
                if threshold.done not in record:
                    record[threshold.done] = 1
                    self._reward(threshold, counter, ordinal - start + 1, self.period_name(per, day))

    # --- awards -----------------------------------------------------------------------------------

    def _reward(self, threshold: Threshold, counter: CounterStep, n: int, period: str) -> None:
        points, campaign = threshold.points, None
        if threshold.campaigns:
            points, campaign = self._multiplier(threshold.campaigns, points)
        reason = threshold_reason(threshold, counter, n, campaign)
        if points > 0:
            self._points(threshold.name, points, period, award_id(threshold.name, self.user, period), reason)
        if threshold.badge is not None:
            assert threshold.badge_kind is not None
            self._badge(threshold.badge, threshold.badge_kind, period, (threshold.badge, period))

    def check_level(self) -> None:
        """Award a level badge for every level the user's lifetime points now reach."""
        core, levels = self.core, self.rules.levels
        while core["level"] + 1 < len(levels) and core["points"] >= levels[core["level"] + 1][1]:
            core["level"] += 1
            name = levels[core["level"]][0]
            self._badge(name, "level", LIFETIME, ("level", name), level=name)

    def _points(self, rule: str, points: int, period: str, the_id: str, reason: str) -> None:
        self.core["points"] += points
        self.out.points.append(
            PointAward(
                award_id=the_id,
                user_id=self.user,
                team_id=self.team,
                points=points,
                rule=rule,
                period=period,
                source_event_id=self.source,
                rules_version=self.rules.version,
                ts=self.event.ts,
                reason=reason,
            )
        )

    def _badge(
        self, badge: str, kind: str, period: str, identity: tuple[str, ...], level: str | None = None
    ) -> None:
        self.out.badges.append(
            BadgeAward(
                award_id=award_id("badge", self.user, *identity),
                user_id=self.user,
                team_id=self.team,
                badge=badge,
                kind=kind,
                source_event_id=self.source,
                rules_version=self.rules.version,
                ts=self.event.ts,
                level=level,
                period=period,
            )
        )
