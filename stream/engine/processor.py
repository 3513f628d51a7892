"""Apply the rules to one event in one transaction over its user's keys: awards and credits out.

Pure: no Kafka, no clock. The caller opens the transaction (stream/core/state.py), commits it when
``apply`` returns and rolls it back when it raises, so a failing event leaves no change behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.core.state import Transaction
from stream.domains import early, inviter
from stream.domains.invitations import InviteOut
from stream.domains.messages import Grant, GroupJoin, RosterChange
from stream.engine.awards import BadgeAward, PointAward, award_id
from stream.engine.credits import Credit
from stream.engine.facts import ACTOR, Fact, credit_fact, make_facts
from stream.engine.fingerprints import Fingerprints, fingerprint
from stream.engine.layout import CORE, FORMAT, IGNORED_TAG, SEEN, SEPARATOR, check_core, new_core, team_of
from stream.engine.migrate import migrate_legacy
from stream.engine.periods import LIFETIME, Calendar, Day
from stream.engine.reasons import per_fact_reason, threshold_reason
from stream.engine.retention import advance, seen_before
from stream.events import Activity, Event, Invite, Like, Login, Member, MemberLeft, Message
from stream.rules.compiler import Campaign, CompiledRules, CounterStep, PointStep, Threshold
from stream.rules.versions import RuleBook

GROUP_TAG = "%"  # in a week's record: a group the user interacted in
BOARD_TAG = "^"  # in a week's record: the user's board score, [score, latest ts] (not counting late ones)
WEEK_POINTS = "+p"  # in a day's record: the points the user's events earned; in a week's: its grants

APPLIED = "applied"
DUPLICATE = "duplicate"
IGNORED = "ignored"
TOO_LATE = "too_late"


def _never_late(week: str) -> bool:
    return False


@dataclass(slots=True)
class Outcome:
    """What one event did: its status, the awards and credits it produced, what it sends to other keys."""

    status: str = APPLIED
    reason: str | None = None
    points: list[PointAward] = field(default_factory=list)
    badges: list[BadgeAward] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)
    # rarely set: shared empty tuples until then (fewer allocations per event), replaced, never appended to
    messages: Sequence[GroupJoin | RosterChange] = ()  # to groups and teams
    groups_counted: Sequence[str] = ()  # groups the event counts an interaction of
    team_counted: int = 0  # facts counted toward the event's team's month
    scores: Sequence[tuple[str, str, str, int, int]] = ()  # board, week, id, score, ts
    board_late: int = 0  # contributions to a board whose week had closed
    day: Day | None = None  # the event's day (None: no period touched)
    new_user_day: bool = False  # the user's first event of that day
    invite: InviteOut | None = None  # what an im.invites event did on the inviter's side
    invitee: bool = False  # the user has an open invitation: look at it after this event


class Engine:
    """The rule engine: the versions of the rules, the calendar, and the state layout of a user."""

    def __init__(self, book: RuleBook, calendar: Calendar) -> None:
        self.book = book
        self.calendar = calendar
        self._early = (-1, 0, 0)  # (versions seen, messages, groups) the early activity log keeps

    def early_keep(self) -> tuple[int, int]:
        """Return how many first messages and groups the early activity log keeps (the most any version needs)."""
        versions = self.book.versions
        if self._early[0] != len(versions):
            self._early = (
                len(versions),
                max(version.invites.full_messages for version in versions),
                max(version.invites.full_groups for version in versions),
            )
        return self._early[1], self._early[2]

    def apply(
        self,
        event: Event | Credit,
        tx: Transaction,
        user_key: bytes,
        late: Callable[[str], bool] = _never_late,
    ) -> Outcome:
        """Apply one event (or credit) of the user ``user_key`` within ``tx`` and return what it did.

        ``late(week)`` tells whether the event comes after its week's boards closed: it then counts for
        points, never for a board.
        """
        p = user_key + SEPARATOR  # layout.prefix, inline: once per event
        core_key = p + CORE
        core = self._core(tx, user_key, core_key)
        kind = type(event)
        if kind is Member or kind is MemberLeft:
            return _roster(tx, core_key, event)  # type: ignore[arg-type]
        if kind is Invite:
            return self._invite(event, tx, p, core_key, core)  # type: ignore[arg-type]
        return self._scored(event, tx, p, core_key, core, late)  # type: ignore[arg-type]

    def _core(self, tx: Transaction, user_key: bytes, core_key: bytes) -> dict[str, Any] | None:
        """Return a user's core record (None: no state), migrating format 1 and refusing newer formats."""
        core: dict[str, Any] | None = tx.get(core_key)
        if core is None:
            return migrate_legacy(tx, user_key, self.calendar)
        if core.get("v") != FORMAT:
            check_core(core, user_key)
        return core

    def grant(self, grant: Grant, tx: Transaction, user_key: bytes) -> Outcome:
        """Pay an award another key decided (a challenge, a title), once per the user's period record."""
        p = user_key + SEPARATOR
        core_key = p + CORE
        core = self._core(tx, user_key, core_key)
        rules = self.book.at(grant.period_start_ms)
        if core is not None and grant.period_end_ms + self.book.retention_ms <= core["wm"]:
            return Outcome(status=TOO_LATE, reason=f"{grant.per} {grant.period} is past the retention")
        core = tx.edit(core_key, new_core)
        kind, tag = ("weeks", b"w:") if grant.per == "week" else ("months", b"m:")
        kept: dict[str, int] = core[kind]
        if grant.period not in kept:
            core[kind] = {**kept, grant.period: grant.period_end_ms}
            if not 0 < core["px"] <= grant.period_end_ms:
                core["px"] = grant.period_end_ms
        record = tx.edit(p + tag + grant.period.encode())
        done = f"!{grant.rule}@{grant.identity}"
        if done in record:
            return Outcome(status=DUPLICATE)
        record[done] = 1
        team = team_of(core) or ""
        out = Outcome()
        source = f"{grant.rule}:{grant.identity}:{grant.period}"
        if grant.points:
            core["points"] += grant.points
            if grant.per == "week":
                record["+p"] = record.get("+p", 0) + grant.points
            out.points.append(
                PointAward(
                    award_id=award_id(grant.rule, grant.identity, grant.period, grant.user),
                    user_id=grant.user,
                    team_id=team,
                    points=grant.points,
                    rule=grant.rule,
                    period=grant.period,
                    source_event_id=source,
                    rules_version=grant.version,
                    ts=grant.period_start_ms,
                    reason=grant.reason,
                )
            )
        if grant.badge is not None and grant.kind is not None:
            if grant.kind == "title":
                core["titles"] = [*core.get("titles", []), [grant.badge, grant.period]]
            out.badges.append(
                BadgeAward(
                    award_id=award_id("badge", grant.user, grant.badge, grant.period),
                    user_id=grant.user,
                    team_id=team,
                    badge=grant.badge,
                    kind=grant.kind,
                    source_event_id=source,
                    rules_version=grant.version,
                    ts=grant.period_start_ms,
                    period=grant.period,
                )
            )
        if grant.points:
            _levels(core, rules, out, grant.user, team, source, grant.period_start_ms)
        return out

    def book_award(self, tx: Transaction, user_key: bytes, award: PointAward) -> list[BadgeAward]:
        """Add an award decided elsewhere that counts (activated, granted, revoked) to a user's balance.

        Return the level badges the new balance reaches.
        """
        core = self._core(tx, user_key, user_key + SEPARATOR + CORE)
        core = tx.edit(user_key + SEPARATOR + CORE, new_core)
        core["points"] += award.points
        out = Outcome()
        if award.points > 0:
            rules = self.book.at(award.ts)
            _levels(core, rules, out, award.user_id, award.team_id, award.source_event_id, award.ts)
        return out.badges

    def _admit(
        self, event_id: str, ts: int, tx: Transaction, p: bytes, core: dict[str, Any] | None
    ) -> tuple[Outcome | None, Day, bytes]:
        """Return why an event is refused (past the retention, seen before) or None, its day and fingerprint."""
        day = self.calendar.day_of(ts)
        if core is not None and day.end_ms + self.book.retention_ms <= core["wm"]:
            return Outcome(status=TOO_LATE, reason=f"day {day.name} is past the retention"), day, b""
        fp = fingerprint(event_id)
        if core is not None and seen_before(tx, p, core, fp, self.calendar):
            return Outcome(status=DUPLICATE), day, fp
        return None, day, fp

    def _invite(
        self, event: Invite, tx: Transaction, p: bytes, core_key: bytes, core: dict[str, Any] | None
    ) -> Outcome:
        """Apply an ``im.invites`` event on the inviter's key (de-duplicated like any event)."""
        ts = event.ts
        refused, day, fp = self._admit(event.event_id, ts, tx, p, core)
        if refused is not None:
            return refused
        fresh = core is None or not core["wm"]
        core = tx.edit(core_key, new_core)
        advance(tx, p, core, day, ts, self.book.retention_ms, self.calendar)
        day_record = tx.edit(p + day.day_key)
        seen = day_record.get(SEEN)
        day_record[SEEN] = (seen if seen is not None else Fingerprints()).plus(fp)
        keep, keep_groups = self.early_keep()
        early.update(tx, p, core, event, ts, fresh, keep, keep_groups)  # inviting is activity too
        rules = self.book.at(ts)
        out = Outcome()
        out.invite, why = inviter.on_event(tx, event, rules.invites, self.calendar, rules.version)
        if why is not None:
            out.status, out.reason = IGNORED, why
            entry = IGNORED_TAG + why
            day_record[entry] = day_record.get(entry, 0) + 1
        return out

    def _scored(
        self,
        event: Message | Like | Login | Activity | Credit,
        tx: Transaction,
        p: bytes,
        core_key: bytes,
        core: dict[str, Any] | None,
        late: Callable[[str], bool],
    ) -> Outcome:
        ts = event.ts
        refused, day, fp = self._admit(event.event_id, ts, tx, p, core)
        if refused is not None:
            return refused
        fresh = core is None or not core["wm"]
        core = tx.edit(core_key, new_core)
        d0 = core["d0"]
        new_day = day.ordinal > d0 or not (core["dm"] >> (d0 - day.ordinal)) & 1
        advance(tx, p, core, day, ts, self.book.retention_ms, self.calendar)
        rules = self.book.at(ts)
        ctx = _Context(self, rules, tx, p, core, day, event)
        out = ctx.out
        out.day, out.new_user_day = day, new_day
        day_record = ctx.record("day")
        seen = day_record.get(SEEN)
        day_record[SEEN] = (seen if seen is not None else Fingerprints()).plus(fp)
        if isinstance(event, Credit):
            facts = [credit_fact(event)]
        else:
            if core["team"] != event.team_id:
                core["team"] = event.team_id
            made = make_facts(event, day_record, rules.like_pair_daily_limit, rules.group_min_invited)
            if made.ignored is not None:
                out.status, out.reason = IGNORED, made.ignored
                entry = IGNORED_TAG + made.ignored
                day_record[entry] = day_record.get(entry, 0) + 1
            facts = made.facts
            out.credits = made.credits
            summary = core.get("e")
            keep, keep_groups = self.early_keep()
            if summary is None or early.needs_update(summary, event, ts, keep_groups):
                early.update(tx, p, core, event, ts, fresh, keep, keep_groups)
            if "iv" in core:
                out.invitee = True
        for fact in facts:
            ctx.run(fact)
        if facts and rules.social:
            ctx.social(facts, late)
        if out.points:
            ctx.check_level()
        return out


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
            team = team_of(core)
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
        if capped is not None:
            record = self.record("day")
            entry = IGNORED_TAG + "cap:" + step.name
            record[entry] = record.get(entry, 0) + 1
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
        _levels(self.core, self.rules, self.out, self.user, self.team, self.source, self.event.ts)

    # --- groups, teams, boards ----------------------------------------------------------------------

    def social(self, facts: list[Fact], late: Callable[[str], bool]) -> None:
        """Count the event for its groups, its team and the boards; note the points it earned today."""
        rules, out, day, ts = self.rules, self.out, self.day, self.event.ts
        for fact in facts:
            if fact.side == ACTOR:
                if fact.name in rules.group_facts:
                    group = fact.fields.get("group_id")
                    if group is not None:
                        entry = GROUP_TAG + group
                        week = self.own.get("week")
                        if week is None:
                            week = self.tx.get(self.p + day.week_key)
                        if week is None or entry not in week:  # the first interaction: written once
                            self.record("week")[entry] = 1
                            out.messages = [
                                *out.messages,
                                GroupJoin(group, day.week, self.user, ts, day.week_start_ms),
                            ]
                        out.groups_counted = [*out.groups_counted, group]
                if fact.name in rules.team_facts:
                    out.team_counted += 1
            else:
                for name in rules.received_boards.get(fact.name, ()):
                    self._score(name, 1, late)
        if out.points:
            earned = 0
            for award in out.points:
                earned += award.points
            today = self.record("day")
            today[WEEK_POINTS] = today.get(WEEK_POINTS, 0) + earned
            roster = self.core["roster"]
            joined = roster[1] if roster else None
            if joined is not None:
                for board in rules.newcomer_boards:
                    if day.week_end_ms - board.joined_within_ms <= joined < day.week_end_ms:
                        self._score(board.name, earned, late)

    def _score(self, board: str, delta: int, late: Callable[[str], bool]) -> None:
        week_name = self.day.week
        if late(week_name):
            self.out.board_late += 1
            return
        week = self.record("week")
        entry = BOARD_TAG + board
        before = week.get(entry)
        ts = self.event.ts
        score = (before[0] + delta, max(before[1], ts)) if before else (delta, ts)
        week[entry] = score
        self.out.scores = [*self.out.scores, (board, week_name, self.user, score[0], score[1])]

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

    def _badge(self, badge: str, kind: str, period: str, identity: tuple[str, ...]) -> None:
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
                period=period,
            )
        )


def _levels(
    core: dict[str, Any], rules: CompiledRules, out: Outcome, user: str, team: str, source: str, ts: int
) -> None:
    """Award a level badge for every level the user's lifetime points now reach."""
    levels = rules.levels
    while core["level"] + 1 < len(levels) and core["points"] >= levels[core["level"] + 1][1]:
        core["level"] += 1
        name = levels[core["level"]][0]
        out.badges.append(
            BadgeAward(
                award_id=award_id("badge", user, "level", name),
                user_id=user,
                team_id=team,
                badge=name,
                kind="level",
                source_event_id=source,
                rules_version=rules.version,
                ts=ts,
                level=name,
                period=LIFETIME,
            )
        )


def _roster(tx: Transaction, core_key: bytes, event: Member | MemberLeft) -> Outcome:
    """Record a roster change on the user and send it to the team(s) it concerns."""
    current = tx.get(core_key)
    if current is not None:
        unchanged = (
            current["left"]
            if isinstance(event, MemberLeft)
            else not current["left"] and current["roster"] == [event.team_id, event.joined_at]
        )
        if unchanged:
            return Outcome()  # a redelivery: the team has heard it already
    core = tx.edit(core_key, new_core)
    before = core["roster"]
    version = -1  # the caller sets the members record's offset: the same on a replay, and only growing
    out = Outcome()
    user = core_key[: -len(SEPARATOR + CORE)].decode()
    if isinstance(event, Member):
        if before and not core["left"] and before[0] != event.team_id:
            out.messages = [*out.messages, RosterChange(before[0], user, version, None)]
        core["roster"] = [event.team_id, event.joined_at]
        core["left"] = False
        out.messages = [*out.messages, RosterChange(event.team_id, user, version, event.joined_at)]
    else:
        core["left"] = True
        if before:
            out.messages = [*out.messages, RosterChange(before[0], user, version, None)]
    return out
