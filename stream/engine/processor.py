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
from stream.engine.layout import CORE, LIFETIME_KEY, check_core, new_core, prefix
from stream.engine.migrate import migrate_legacy
from stream.engine.periods import LIFETIME, Calendar, Day
from stream.engine.reasons import per_fact_reason, threshold_reason
from stream.events import Event, Invite, Member, MemberLeft
from stream.rules.compiler import Campaign, CompiledRules, CounterStep, PointStep, Threshold
from stream.rules.versions import RuleBook

APPLIED = "applied"
DUPLICATE = "duplicate"
IGNORED = "ignored"
TOO_LATE = "too_late"

_EMPTY_SEEN = Fingerprints()


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
        p = prefix(user_key)
        core_key = p + CORE
        core = tx.get(core_key)
        if core is None:
            core = migrate_legacy(tx, user_key, self.calendar)
        elif core.get("v") != 2:
            check_core(core, user_key)
        if isinstance(event, Member | MemberLeft):
            core = tx.edit(core_key, new_core)
            if isinstance(event, Member):
                core["roster"] = [event.team_id, event.joined_at]
                core["left"] = False
            else:
                core["left"] = True
            return Outcome()
        if isinstance(event, Invite):
            raise TypeError("invitation events are not handled by this engine")
        ts = event.ts
        day = self.calendar.day_of(ts)
        retention = self.book.retention_ms
        if core is not None:
            if day.end_ms + retention <= core["wm"]:
                return Outcome(status=TOO_LATE, reason=f"day {day.name} is past the retention")
        fp = fingerprint(event.event_id)
        if core is not None and self._seen(tx, p, core, fp):
            return Outcome(status=DUPLICATE)
        core = tx.edit(core_key, new_core)
        self._advance(tx, p, core, day, ts, retention)
        seen_key = p + b"s:" + day.name.encode()
        tx.set(seen_key, (tx.get(seen_key) or _EMPTY_SEEN).plus(fp))
        rules = self.book.at(ts)
        ctx = _Context(self, rules, tx, p, core, day, event)
        if isinstance(event, Credit):
            ctx.run(credit_fact(event))
        else:
            if core["team"] != event.team_id:
                core["team"] = event.team_id
            made = make_facts(event, ctx.record("day"), rules.like_pair_daily_limit, rules.group_min_invited)
            if made.ignored is not None:
                ctx.out.status, ctx.out.reason = IGNORED, made.ignored
            for fact in made.facts:
                ctx.run(fact)
            ctx.out.credits = made.credits
        if ctx.out.points:
            ctx.check_level()
        return ctx.out

    # --- de-duplication and retention ---------------------------------------------------------------

    def _seen(self, tx: Transaction, p: bytes, core: dict[str, Any], fp: bytes) -> bool:
        """Tell whether any retained day has seen ``fp`` (a redelivery may carry another ``ts``)."""
        mask, d0 = core["dm"], core["d0"]
        day_for = self.calendar.day_for_ordinal
        i = 0
        while mask:
            if mask & 1:
                seen = tx.get(p + b"s:" + day_for(d0 - i).name.encode())
                if seen is not None and fp in seen:
                    return True
            mask >>= 1
            i += 1
        return False

    def _advance(
        self, tx: Transaction, p: bytes, core: dict[str, Any], day: Day, ts: int, retention: int
    ) -> None:
        """Move the watermark to ``ts``, drop the periods it leaves behind, and mark ``day`` as kept."""
        if ts > core["wm"]:
            core["wm"] = ts
            horizon = ts - retention
            mask, d0 = core["dm"], core["d0"]
            while mask:
                i = mask.bit_length() - 1
                old = self.calendar.day_for_ordinal(d0 - i)
                if old.end_ms > horizon:
                    break
                name = old.name.encode()
                for key in (p + b"d:" + name, p + b"s:" + name):
                    if tx.get(key) is not None:
                        tx.delete(key)
                mask &= ~(1 << i)
            core["dm"] = mask
            for kind, tag in (("weeks", b"w:"), ("months", b"m:"), ("campaigns", b"c:")):
                kept: dict[str, int] = core[kind]
                stale = [name for name, end in kept.items() if end <= horizon]
                if stale:
                    for name in stale:
                        tx.delete(p + tag + name.encode())
                    core[kind] = {name: end for name, end in kept.items() if end > horizon}
        ordinal = day.ordinal
        d0 = core["d0"]
        if ordinal > d0:
            core["dm"] = (core["dm"] << (ordinal - d0)) | 1 if d0 else 1
            core["d0"] = ordinal
        else:
            core["dm"] |= 1 << (d0 - ordinal)


class _Context:
    """One event's working set: the rules in effect, its records, and the awards it makes."""

    __slots__ = ("core", "day", "engine", "event", "out", "p", "records", "rules", "source", "team", "tx", "user")

    def __init__(
        self,
        engine: Engine,
        rules: CompiledRules,
        tx: Transaction,
        p: bytes,
        core: dict[str, Any],
        day: Day,
        event: Event | Credit,
    ) -> None:
        self.engine, self.rules, self.tx, self.p, self.core, self.day = engine, rules, tx, p, core, day
        self.event = event
        self.out = Outcome()
        self.records: dict[bytes, dict[str, Any]] = {}
        self.user: str = event.user_id
        if isinstance(event, Credit):
            self.source = event.source_event_id
            # The receiver's team when known (own events, else the roster); else the sender's, in the award only.
            roster = core["roster"]
            team = core["team"] or (roster[0] if roster else None)
            self.team: str = team if team is not None else event.team_id
        else:
            self.source = event.event_id  # type: ignore[union-attr]
            self.team = event.team_id  # type: ignore[union-attr]

    # --- records of periods -----------------------------------------------------------------------

    def record(self, per: str, day: Day | None = None, campaign: Campaign | None = None) -> dict[str, Any]:
        """Return the changeable record of a period of ``day`` (default: the event's day)."""
        day = day or self.day
        if per == "day":
            key = self.p + b"d:" + day.name.encode()
        elif per == "week":
            key = self.p + b"w:" + day.week.encode()
            self._keep("weeks", day.week, day.week_end_ms)
        elif per == "month":
            key = self.p + b"m:" + day.month.encode()
            self._keep("months", day.month, day.month_end_ms)
        elif per == "lifetime":
            key = self.p + LIFETIME_KEY
        else:
            assert campaign is not None
            key = self.p + b"c:" + campaign.name.encode()
            self._keep("campaigns", campaign.name, campaign.end_ms)
        record = self.records.get(key)
        if record is None:
            record = self.records[key] = self.tx.edit(key)
        return record

    def _keep(self, kind: str, name: str, end_ms: int) -> None:
        kept: dict[str, int] = self.core[kind]
        if name not in kept:
            self.core[kind] = {**kept, name: end_ms}  # replaced, never changed in place (copy on write)

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
        plan = self.rules.plan(fact.name, fact.side)
        for step in plan.points:
            if step.test is None or step.test(fact.fields):
                self._pay(step)
        for counter in plan.counters:
            if counter.test is None or counter.test(fact.fields):
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
        points, campaign = (step.points, None) if not step.campaigns else self._multiplier(step.campaigns, step.points)
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
        reason = per_fact_reason(step.title, campaign, capped)
        self._points(step.name, points, self.day.name, award_id(step.name, self.user, self.source), reason)

    def _count(self, counter: CounterStep, fact: Fact) -> None:
        per, campaign = counter.per, counter.campaign
        if campaign is not None and not campaign.start_ms <= self.event.ts < campaign.end_ms:
            return
        record = self.record(per, campaign=campaign)
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

    def _badge(self, badge: str, kind: str, period: str, identity: tuple[str, ...], level: str | None = None) -> None:
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
