"""Compute the exact awards SPEC's programme owes for a list of valid events, independently.

A second, deliberately plain implementation of SPEC's "Default rules", so that a disagreement with a
real worker is either a bug here or a bug in the engine:

- base behaviour points (daily login, messages by kind, replies, votes, groups created with members,
  likes given with their daily cap, thanks cards and quality marks paid to the receiver);
- anti-gaming: self-likes, self-thanks and self-marks count for nothing, likes from one user to the same
  user count at most ``like_pair_daily_limit`` a day, for points and for every counter;
- thresholds, each paid once per period when its count first reaches it: ``weekly_active_100``, the
  daily tasks (3 messages, 2 counted likes given, 1 feed view), the weekly tasks (3 distinct groups
  spoken in, 1 vote, a login streak of 5 consecutive days reached on a day of the week; streaks run
  across week boundaries), the lifetime growth achievements (1,000 messages, 100 counted likes received,
  5 groups created); the task and achievement badges that go with them;
- the challenges (the rules' ``challenges`` section): a group (``owner: group``) whose ISO week reaches
  the threshold in interactions (messages carrying its ``group_id``, and counted likes carrying it: not
  self-likes, not beyond the pair limit) pays every user with at least one counted interaction in it that
  week, once per group-week; a team (``owner: team``) whose month reaches the threshold in messages (by
  the message's ``team_id``) pays each member on its roster (``im.members``) when the count is reached,
  once per team-month. Each of these awards is also expected by its id (the hash of rule, group or team,
  period and user, as stream/engine/awards.py makes it: one id per user and group-week or team-month,
  whichever worker or replay pays it), its period and its ``ts`` (the period's start);
- levels from lifetime points, challenge points included.

Boards are left out on purpose: the model refuses rules with boards, and the chaos workers run with
``chaos/rules.yaml`` (the default rules with ``boards: {}``). A week's title badges are decided when the
week closes, and an event of that week arriving after the close still pays but no longer counts for the
board. The chaos traffic has such events by design (re-deliveries up to ~0.8 days of traffic later, edge
cases of last week spread over the whole stream) and each partition closes a week on its own clock, so
under kills, broker outages and rebalances which events are late for a board is timing, not input: no
exact title could be expected. tests/unit/test_social_pipeline.py checks the boards instead.

It reads the numbers (points, thresholds, caps, limits, levels, challenges) from the rules YAML with
PyYAML and never imports ``stream``: which rule counts what is written out here by hand, from SPEC. Days,
ISO weeks and months are calendar periods of the configured time zone.

Everything it computes is independent of the order events are processed in, as the engine's totals must
be: a daily cap or a pair limit decides *which* event earns, not *how many* do; a threshold is reached
in a period or not; a streak day is a day whose four previous days also saw a login; a group pays all
its users of the week, whenever they came. Which likes of a pair count (and so which groups they count
for) is decided in the giver's own order, which Kafka keeps (one key, one partition) and the model
follows (the records' order). Two exceptions: the retention (``too_late``), which the chaos traffic stays
well inside; and a team's roster at the crossing, which the model takes in the records' order while a
worker hears roster changes and counts on different topics: exact when the roster is settled before the
crossing, as in the chaos traffic (``stream.feed`` yields every member record first, and none changes;
malformed member records are dead letters). Besides, the chaos traffic's teams stay far below 10,000
messages a month (~20,000 messages over 50 teams in 8 days; the busiest team-month has ~1,200), so
``team_monthly_10000`` pays nobody there; tests/unit/test_chaos_model.py checks the team challenge's
model against the pipeline at a lower threshold.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from hashlib import blake2b
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from chaos.invites_model import InviteModel

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "stream" / "rules" / "default.yaml"
CHAOS_RULES = ROOT / "chaos" / "rules.yaml"  # the defaults without boards: what the chaos workers run

MESSAGE_RULES = {"text": "message_text", "voice": "message_voice", "video": "message_video"}
MESSAGE_RULES |= {"file": "message_file", "image": "message_image"}


@dataclass
class Expected:
    """What the traffic must earn: points and awards per (user, rule), badges and level badges per user."""

    points: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (user, rule)
    awards: Counter[tuple[str, str]] = field(default_factory=Counter)  # (user, rule) -> awards
    levels: dict[str, set[str]] = field(default_factory=dict)  # user -> level names reached above the first
    badges: Counter[tuple[str, str]] = field(default_factory=Counter)  # (user, badge) -> task/achievement
    # award id -> (user, rule, points, period, ts) of every challenge award
    challenges: dict[str, tuple[str, str, int, str, int]] = field(default_factory=dict)
    challenge_rules: frozenset[str] = frozenset()  # the challenges' names (the rules of those awards)

    def totals(self) -> dict[str, int]:
        """Return each user's balance (users with no points are left out)."""
        out: dict[str, int] = defaultdict(int)
        for (user, _), pts in self.points.items():
            out[user] += pts
        return {user: pts for user, pts in out.items() if pts}

    def award_count(self) -> int:
        """Return the number of distinct point awards."""
        return sum(self.awards.values())

    def by_rule(self) -> Counter[str]:
        """Return the number of awards per rule."""
        out: Counter[str] = Counter()
        for (_, rule), n in self.awards.items():
            out[rule] += n
        return out


class _Periods:
    """Name the local day, ISO week and month of an epoch-millisecond time."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self._cache: dict[int, tuple[date, str, str, str]] = {}

    def start_ms(self, local: date) -> int:
        """Return the epoch ms of local midnight starting ``local``."""
        return int(datetime(local.year, local.month, local.day, tzinfo=self.zone).timestamp() * 1000)

    def of(self, ts_ms: int) -> tuple[date, str, str, str]:
        """Return (local date, day name, week name, month name); cached per quarter of an hour."""
        quarter = ts_ms // 900_000  # every zone offset is whole quarters: a quarter is in one local day
        hit = self._cache.get(quarter)
        if hit is None:
            local = datetime.fromtimestamp(quarter * 900, self.zone).date()
            hit = self._cache[quarter] = (local, *_names(local))
        return hit


def _names(local: date) -> tuple[str, str, str]:
    year, week, _ = local.isocalendar()
    return local.isoformat(), f"{year}-W{week:02d}", f"{local.year}-{local.month:02d}"


class Model:
    """Replay valid events through SPEC's per-user rules and collect the expected awards."""

    def __init__(
        self, rules_file: Path = CHAOS_RULES, timezone: str = "Asia/Shanghai", partitions: int = 4
    ) -> None:
        doc = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
        if doc.get("campaigns"):
            raise ValueError("the chaos model knows no campaigns: run it with rules that have none")
        if doc.get("boards"):
            raise ValueError("the chaos model knows no boards (see its docstring): run it with `boards: {}`")
        self.rules: dict[str, dict[str, Any]] = doc["rules"]
        self.challenges = {
            name: spec for name, spec in (doc.get("challenges") or {}).items() if spec.get("enabled", True)
        }
        owners = {spec["owner"] for spec in self.challenges.values()}
        # SPEC: a group counts messages and likes carrying its id, a team the messages of its team_id.
        interactions = sorted((doc.get("groups") or {}).get("interactions", []))
        if "group" in owners and interactions != ["like", "message"]:
            raise ValueError("the chaos model counts a group's messages and likes: groups.interactions")
        if "team" in owners and (doc.get("teams") or {}).get("counts", []) != ["message"]:
            raise ValueError("the chaos model counts a team's messages: teams.counts")
        gaming = doc.get("anti_gaming", {})
        self.pair_limit: int = gaming.get("like_pair_daily_limit", 5)
        self.min_invited: int = gaming.get("group_min_invited", 1)
        self.levels: list[dict[str, Any]] = doc["levels"]
        self.periods = _Periods(timezone)
        self.expected = Expected()
        self._seen: set[tuple[str, str]] = set()  # (user, event id)
        self._paid: Counter[tuple[str, str, str]] = Counter()  # (user, day, rule) -> points (daily caps)
        self._pairs: Counter[tuple[str, str, str]] = Counter()  # (giver, day, receiver) -> counted likes
        self._counts: Counter[tuple[str, str, str]] = Counter()  # (user, counter, period) -> count
        self._distinct: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self._done: set[tuple[str, str, str]] = set()  # (user, threshold rule, period) paid
        self._login_days: dict[str, set[int]] = defaultdict(set)  # user -> date ordinals with a login
        self._groups: Counter[tuple[str, str]] = Counter()  # (group, week) -> counted interactions
        self._group_users: dict[tuple[str, str], set[str]] = defaultdict(set)  # (group, week) -> users
        self._week_start: dict[str, int] = {}  # week -> epoch ms of its local Monday 00:00
        self._teams: Counter[tuple[str, str]] = Counter()  # (team, month) -> messages
        self._roster: dict[str, str] = {}  # user -> team, from im.members (a tombstone: left)
        self.expected.challenge_rules = frozenset(self.challenges)
        self.partitions = partitions
        invites = doc.get("invites") or {}
        self.invites = InviteModel(invites, self.periods.of) if invites.get("enabled", True) else None

    # --- input --------------------------------------------------------------------------------

    def feed(self, records: Iterable[tuple[str, Any, Any]]) -> Model:
        """Apply (source, key, value) records; values must be valid events (dicts) or member records."""
        for source, key, value in records:
            if source == "member":
                self.member(key, value)
            else:
                self.event(source, value)
        return self

    def member(self, user: str, record: dict[str, Any] | None) -> None:
        """Apply a roster record: the user is on ``team_id``'s roster, or left it (a tombstone, None)."""
        if record is None:
            self._roster.pop(user, None)
        else:
            self._roster[record["user_id"]] = record["team_id"]

    def event(self, source: str, e: dict[str, Any]) -> None:
        """Apply one valid event of ``source`` (message, like, login, activity or invite)."""
        if source == "invite":
            if self._first(e["inviter_id"], e["event_id"]) and self.invites is not None:
                self.invites.activity(e["inviter_id"], source, e)
                self.invites.invite(e)
            return
        user = e["user_id"]
        if not self._first(user, e["event_id"]):
            return
        if self.invites is not None:
            self.invites.activity(user, source, e)
        local, day, week, month = self.periods.of(e["ts"])
        if source == "message":
            self._interact(user, e.get("group_id"), local, week)
            self._team_message(e["team_id"], local, month)
            self._pay(user, day, MESSAGE_RULES[e["kind"]])
            reply_to = e.get("reply_to_user_id")
            if reply_to is not None and reply_to != user:
                self._pay(user, day, "reply")
            self._count(user, "messages_day", day, "daily_messages")
            self._count(user, "messages_week", week, "weekly_active_100")
            self._count(user, "messages_lifetime", "lifetime", "messages_1000")
            group = e.get("group_id")
            if group is not None:
                self._distinct[(user, "groups_week", week)].add(group)
                self._check(user, "weekly_groups", week, len(self._distinct[(user, "groups_week", week)]))
        elif source == "like":
            target = e["target_user_id"]
            if target == user or self._pairs[(user, day, target)] >= self.pair_limit:
                return  # counts for nothing, anywhere
            self._pairs[(user, day, target)] += 1
            self._interact(user, e.get("group_id"), local, week)
            self._pay(user, day, "like_given")
            self._count(user, "likes_given_day", day, "daily_likes")
            # The receiver counts the like once, by the source event's id.
            if self._first(target, "like:" + e["event_id"]):
                self._count(target, "likes_received", "lifetime", "likes_received_100")
        elif source == "login":
            self._count(user, "logins_day", day, "daily_login")
            self._login_days[user].add(local.toordinal())
        elif source == "activity":
            kind = e["type"]
            if kind == "vote":
                self._pay(user, day, "vote")
                self._count(user, "votes_week", week, "weekly_vote")
            elif kind == "feed_view":
                self._count(user, "feed_views_day", day, "daily_feed_view")
            elif kind == "group_created":
                if (e.get("invited_count") or 0) >= self.min_invited:
                    self._pay(user, day, "group_created")
                    self._count(user, "groups_created", "lifetime", "groups_created_5")
            elif kind in ("thanks_card", "quality_marked"):
                target = e.get("target_user_id")
                if target is None or target == user:
                    return
                rule = "thanks_received" if kind == "thanks_card" else "quality_bonus"
                if self._first(target, f"{kind}:{e['event_id']}"):
                    self._pay(target, day, rule)
        else:
            raise ValueError(f"unknown source {source!r}")

    # --- results ------------------------------------------------------------------------------

    def result(self) -> Expected:
        """Return the expected awards: login streaks, group challenges, then the levels of the balances."""
        for user, days in self._login_days.items():
            need = self.rules["weekly_login_streak"]["threshold"]
            for o in days:
                if all(o - i in days for i in range(1, need)):  # o ends a streak of >= need days
                    _, _, week, _ = self.periods.of(_noon_ms(o, self.periods.zone))
                    self._check(user, "weekly_login_streak", week, need)
        for name, spec in self.challenges.items():
            if spec["owner"] != "group":
                continue
            for (group, week), n in self._groups.items():
                if n >= spec["threshold"]:
                    for user in self._group_users[(group, week)]:
                        self._challenge(name, spec, group, week, self._week_start[week], user)
        exp = self.expected
        if self.invites is not None:
            points, awards, squads = self.invites.finish(self.partitions)
            for key, n in points.items():
                exp.points[key] += n
            for key, n in awards.items():
                exp.awards[key] += n
            for inviter in squads:
                exp.badges[(inviter, self.invites.spec.get("squad_badge", "squad"))] += 1
        for user, total in exp.totals().items():
            reached = {lv["name"] for lv in self.levels[1:] if total >= lv["min_points"]}
            if reached:
                exp.levels[user] = reached
        return exp

    # --- helpers ------------------------------------------------------------------------------

    def _interact(self, user: str, group: str | None, local: date, week: str) -> None:
        """Count a counted message or like carrying ``group`` in the group's week."""
        if group is None:
            return
        self._groups[(group, week)] += 1
        self._group_users[(group, week)].add(user)
        if week not in self._week_start:
            self._week_start[week] = self.periods.start_ms(
                date.fromordinal(local.toordinal() - local.weekday())
            )

    def _team_message(self, team: str, local: date, month: str) -> None:
        """Count a message of ``team``'s month; pay the roster as it is when a team challenge is reached."""
        self._teams[(team, month)] += 1
        n = self._teams[(team, month)]
        for name, spec in self.challenges.items():
            if spec["owner"] == "team" and n == spec["threshold"]:
                start = self.periods.start_ms(local.replace(day=1))
                for user, on in sorted(self._roster.items()):
                    if on == team:
                        self._challenge(name, spec, team, month, start, user)

    def _challenge(
        self, name: str, spec: dict[str, Any], owner: str, period: str, ts: int, user: str
    ) -> None:
        """Pay ``user`` challenge ``name`` of group or team ``owner`` in ``period`` (starting at ``ts``)."""
        the_id = _award_id(name, owner, period, user)
        if the_id in self.expected.challenges:
            return
        self.expected.challenges[the_id] = (user, name, spec["points"], period, ts)
        self._award(user, name, spec["points"])

    def _first(self, user: str, event_id: str) -> bool:
        key = (user, event_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _pay(self, user: str, day: str, rule: str) -> None:
        """Pay a per-event rule within its daily cap (a partial payment when the cap cuts it)."""
        spec = self.rules[rule]
        points = spec.get("points", 0)
        if not spec.get("enabled", True) or points <= 0:
            return
        cap = (spec.get("cap") or {}).get("day")
        if cap is not None:
            points = min(points, cap - self._paid[(user, day, rule)])
            if points <= 0:
                return
        self._paid[(user, day, rule)] += points
        self._award(user, rule, points)

    def _count(self, user: str, counter: str, period: str, rule: str) -> None:
        key = (user, counter, period)
        self._counts[key] += 1
        self._check(user, rule, period, self._counts[key])

    def _check(self, user: str, rule: str, period: str, n: int) -> None:
        """Pay threshold ``rule`` once in ``period`` when the count ``n`` has reached it."""
        spec = self.rules[rule]
        if not spec.get("enabled", True) or n < spec["threshold"] or (user, rule, period) in self._done:
            return
        self._done.add((user, rule, period))
        if spec.get("points", 0) > 0:
            self._award(user, rule, spec["points"])
        if spec.get("badge") is not None:
            self.expected.badges[(user, rule)] += 1

    def _award(self, user: str, rule: str, points: int) -> None:
        self.expected.points[(user, rule)] += points
        self.expected.awards[(user, rule)] += 1


def _award_id(*parts: str) -> str:
    """Return the deterministic id SPEC requires: a hash of what the award is for (24 hex digits)."""
    return blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


def _noon_ms(ordinal: int, zone: ZoneInfo) -> int:
    d = date.fromordinal(ordinal)
    return int(datetime(d.year, d.month, d.day, 12, tzinfo=zone).timestamp() * 1000)


def expect(
    records: Iterable[tuple[str, Any, Any]], rules_file: Path = CHAOS_RULES, partitions: int = 4
) -> Expected:
    """Return the awards SPEC's rules owe for ``records`` (valid events and member records only)."""
    return Model(rules_file, partitions=partitions).feed(records).result()
