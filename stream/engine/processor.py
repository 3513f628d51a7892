"""Apply the rules to one event and one user's state: awards, credits and the new state out.

Pure: no Kafka, no clock. The caller owns the state object and persists it when ``changed`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.engine.awards import BadgeAward, PointAward, award_id
from stream.engine.credits import LIKE_RECEIVED, QUALITY_BONUS, THANKS_RECEIVED, Credit
from stream.engine.periods import LIFETIME, Calendar, Day
from stream.engine.state import UserState
from stream.events import Activity, Event, Invite, Like, Login, Member, MemberLeft, Message
from stream.rules import Rules

Scored = Message | Like | Login | Activity | Credit  # events that earn or count

APPLIED = "applied"
DUPLICATE = "duplicate"
IGNORED = "ignored"
TOO_LATE = "too_late"

DAY_MS = 86_400_000


@dataclass(slots=True)
class Outcome:
    """What one event did: its status, the awards and credits it produced, whether state changed."""

    status: str = APPLIED
    reason: str | None = None
    points: list[PointAward] = field(default_factory=list)
    badges: list[BadgeAward] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)
    changed: bool = False


class Engine:
    """The rule engine of one rules version and one calendar."""

    def __init__(self, rules: Rules, calendar: Calendar) -> None:
        self.rules = rules
        self.calendar = calendar
        self.version = rules.version
        self.retention_ms = rules.time.retention_days * DAY_MS
        self._rule = rules.rules
        self._pair_limit = rules.anti_gaming.like_pair_daily_limit
        self._levels = rules.levels
        self._message_thresholds = [
            (name, t) for name, t in rules.thresholds.items() if t.counter == "messages"
        ]

    # --- entry point --------------------------------------------------------------------------

    def apply(self, event: Event | Credit, state: UserState) -> Outcome:
        """Apply one event (or credit) of the state's user and return what it did."""
        if isinstance(event, Member):
            state.doc["roster"] = [event.team_id, event.joined_at]
            state.doc["left"] = False
            return Outcome(changed=True)
        if isinstance(event, MemberLeft):
            state.doc["left"] = True
            return Outcome(changed=True)
        if isinstance(event, Invite):
            raise TypeError("invitation events are not handled by this engine")
        day = self.calendar.day_of(event.ts)
        if state.is_too_late(day, self.retention_ms):
            return Outcome(status=TOO_LATE, reason=f"day {day.name} is past the retention")
        bucket = state.day(day)
        if state.seen(day, bucket, event.event_id):
            return Outcome(status=DUPLICATE)
        state.advance(event.ts, self.retention_ms)
        out = Outcome(changed=True)
        ctx = _Context(self, state, day, bucket, out, event)
        if isinstance(event, Credit):
            self._credit(ctx, event)
        else:
            state.doc["team"] = event.team_id
            if isinstance(event, Message):
                self._message(ctx, event)
            elif isinstance(event, Like):
                self._like(ctx, event)
            elif isinstance(event, Login):
                self._login(ctx, event)
            elif isinstance(event, Activity):
                self._activity(ctx, event)
        if out.points:
            self._check_level(ctx)
        return out

    # --- per event kind -----------------------------------------------------------------------

    def _message(self, ctx: _Context, event: Message) -> None:
        state, day = ctx.state, ctx.day
        state.count(ctx.bucket, "messages")
        weekly = state.count(state.week(day), "messages")
        monthly = state.count(state.month(day), "messages")
        state.count_lifetime("messages")
        ctx.grant("message_" + event.kind)
        if event.reply_to_user_id is not None and event.reply_to_user_id != event.user_id:
            ctx.grant("reply")
        for name, threshold in self._message_thresholds:
            if threshold.period == "week":
                ctx.threshold(name, threshold.threshold, threshold.points, weekly, state.week(day), day.week)
            elif threshold.period == "month":
                ctx.threshold(
                    name, threshold.threshold, threshold.points, monthly, state.month(day), day.month
                )
            else:
                n = ctx.bucket["n"]["messages"]
                ctx.threshold(name, threshold.threshold, threshold.points, n, ctx.bucket, day.name)

    def _like(self, ctx: _Context, event: Like) -> None:
        if event.target_user_id == event.user_id:
            ctx.ignore("self_like")
            return
        pairs: dict[str, int] = ctx.bucket.setdefault("pairs", {})
        given = pairs.get(event.target_user_id, 0)
        if given >= self._pair_limit:
            ctx.ignore("like_pair_limit")
            return
        pairs[event.target_user_id] = given + 1
        ctx.state.count(ctx.bucket, "likes_given")
        ctx.state.count_lifetime("likes_given")
        ctx.grant("like_given")
        ctx.credit(LIKE_RECEIVED, event.target_user_id)

    def _login(self, ctx: _Context, event: Login) -> None:
        if ctx.state.count(ctx.bucket, "logins") == 1:
            ctx.grant("daily_login", once_per=ctx.day.name)

    def _activity(self, ctx: _Context, event: Activity) -> None:
        state, kind = ctx.state, event.type
        if kind == "vote":
            state.count(ctx.bucket, "votes")
            state.count(state.week(ctx.day), "votes")
            ctx.grant("vote")
        elif kind == "group_created":
            if (event.invited_count or 0) < self._rule["group_created"].min_invited:
                ctx.ignore("group_without_members")
                return
            state.count(ctx.bucket, "groups_created")
            state.count_lifetime("groups_created")
            ctx.grant("group_created")
        elif kind in ("thanks_card", "quality_marked"):
            target = event.target_user_id
            if target is None or target == event.user_id:
                ctx.ignore("self_" + kind)
                return
            state.count(ctx.bucket, "thanks_sent" if kind == "thanks_card" else "quality_marks_given")
            ctx.credit(THANKS_RECEIVED if kind == "thanks_card" else QUALITY_BONUS, target)
        elif kind == "feed_view":
            state.count(ctx.bucket, "feed_views")

    def _credit(self, ctx: _Context, credit: Credit) -> None:
        state = ctx.state
        if state.doc["team"] is None and state.doc["roster"] is None:
            state.doc["team"] = credit.team_id
        state.count(ctx.bucket, credit.kind)
        state.count(state.week(ctx.day), credit.kind)
        state.count_lifetime(credit.kind)
        if credit.kind != LIKE_RECEIVED:
            ctx.grant(credit.kind)

    def _check_level(self, ctx: _Context) -> None:
        doc, levels = ctx.state.doc, self._levels
        while doc["level"] + 1 < len(levels) and doc["points"] >= levels[doc["level"] + 1].min_points:
            doc["level"] += 1
            name = levels[doc["level"]].name
            ctx.badge(name, "level", level=name, period=LIFETIME, identity=("level", name))


class _Context:
    """The per-event working set: shortens the rule code and keeps award construction in one place."""

    __slots__ = ("bucket", "day", "engine", "event", "out", "state", "team", "user")

    def __init__(
        self,
        engine: Engine,
        state: UserState,
        day: Day,
        bucket: dict[str, Any],
        out: Outcome,
        event: Scored,
    ) -> None:
        self.engine, self.state, self.day, self.bucket, self.out, self.event = (
            engine,
            state,
            day,
            bucket,
            out,
            event,
        )
        self.user: str = event.user_id
        # An award names the team of its own event; a credit's, the receiver's team when known.
        team = state.team if isinstance(event, Credit) else event.team_id
        self.team: str = team if team is not None else event.team_id

    @property
    def source(self) -> str:
        event = self.event
        return event.source_event_id if isinstance(event, Credit) else event.event_id

    def ignore(self, reason: str) -> None:
        self.out.status = IGNORED
        self.out.reason = reason

    def grant(self, rule_name: str, *, once_per: str | None = None) -> None:
        """Pay a base rule, within its daily cap; ``once_per`` names the period it pays once in."""
        rule = self.engine._rule[rule_name]
        points = rule.points
        if not rule.enabled or points <= 0:
            return
        paid: dict[str, int] = self.bucket["pts"]
        so_far = paid.get(rule_name, 0)
        if rule.daily_cap is not None:
            points = min(points, rule.daily_cap - so_far)
            if points <= 0:
                return
        paid[rule_name] = so_far + points
        identity = (rule_name, self.user, once_per) if once_per else (rule_name, self.user, self.source)
        self._points(rule_name, points, self.day.name, award_id(*identity))

    def threshold(
        self, name: str, threshold: int, points: int, count: int, bucket: dict[str, Any], period: str
    ) -> None:
        """Pay ``points`` once in ``period`` when ``count`` has reached ``threshold``."""
        if count < threshold:
            return
        done: list[str] = bucket.setdefault("done", [])
        if name in done:
            return
        done.append(name)
        if points > 0:
            self._points(name, points, period, award_id(name, self.user, period))

    def credit(self, kind: str, receiver: str) -> None:
        event = self.event
        assert not isinstance(event, Credit | Member | MemberLeft)
        self.out.credits.append(Credit(receiver, kind, self.user, event.team_id, event.event_id, event.ts))

    def badge(
        self,
        badge: str,
        kind: str,
        *,
        identity: tuple[str, ...],
        level: str | None = None,
        period: str | None = None,
    ) -> None:
        self.out.badges.append(
            BadgeAward(
                award_id=award_id("badge", self.user, *identity),
                user_id=self.user,
                team_id=self.team,
                badge=badge,
                kind=kind,
                source_event_id=self.source,
                rules_version=self.engine.version,
                ts=self.event.ts,
                level=level,
                period=period,
            )
        )

    def _points(self, rule: str, points: int, period: str, the_id: str) -> None:
        self.state.doc["points"] += points
        self.out.points.append(
            PointAward(
                award_id=the_id,
                user_id=self.user,
                team_id=self.team,
                points=points,
                rule=rule,
                period=period,
                source_event_id=self.source,
                rules_version=self.engine.version,
                ts=self.event.ts,
            )
        )
