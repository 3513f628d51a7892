"""Property tests of the rule engine: random event sequences for a few users over a few days.

Credits are applied to their receivers' states, so every point a user holds can be traced to an award.
Each user's balance is checked against ``model_points``, an independent, order-free model of SPEC's default
rules (base behaviour points, daily and weekly tasks, weekly_active_100, growth achievements).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.state import MemoryStore, StateCache
from stream.engine.credits import Credit
from stream.engine.layout import CORE, decode_value, encode_value, prefix
from stream.engine.periods import Calendar
from stream.engine.processor import APPLIED, DUPLICATE, IGNORED, TOO_LATE, Engine, Outcome
from stream.events import Activity, Like, Login, Member, MemberLeft, Message
from stream.rules import load_rules
from stream.rules.versions import RuleBook

RULES = load_rules()
TZ = "Asia/Shanghai"
BOOK = RuleBook.of(RULES, ZoneInfo(TZ))
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # 2026-11-23 00:00 in Shanghai, a Monday
USERS = ("u1", "u2", "u3")
GROUPS = ("g1", "g2", "g3", "g4")
KIND_POINTS = {"text": 2, "voice": 5, "video": 5, "file": 10, "image": 10}
CALENDAR = Calendar(TZ)
RETENTION = RULES.time.retention_days * DAY

PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# --- generating event sequences -----------------------------------------------------------------


@st.composite
def event_sequences(draw: st.DrawFn, *, span_days: int = 4, members: bool = True) -> list[Any]:
    """Draw events of USERS over ``span_days`` local days, in any order, with bursts and duplicates."""
    users = st.sampled_from(USERS)
    times = st.integers(min_value=D0, max_value=D0 + span_days * DAY - 1)
    events: list[Any] = []
    serial = 0

    def next_id() -> str:
        nonlocal serial
        serial += 1
        return f"e{serial}"

    choices = ["message", "burst", "like", "like_burst", "login", "login_run", "activity", "duplicate"]
    for _ in range(draw(st.integers(min_value=1, max_value=25))):
        choice = draw(st.sampled_from([*choices, "member"] if members else choices))
        user, ts = draw(users), draw(times)
        if choice == "message":
            reply_to = draw(st.one_of(st.none(), users))
            group = draw(st.one_of(st.none(), st.sampled_from(GROUPS)))
            kind = draw(st.sampled_from(list(KIND_POINTS)))
            events.append(Message(next_id(), user, "t1", kind, ts, group, reply_to))
        elif choice == "burst":  # many messages in a day: daily task, weekly threshold, levels
            kind = draw(st.sampled_from(list(KIND_POINTS)))
            group = draw(st.one_of(st.none(), st.sampled_from(GROUPS)))
            for i in range(draw(st.integers(min_value=1, max_value=120))):
                events.append(Message(next_id(), user, "t1", kind, ts + i, group, None))
        elif choice == "like":
            events.append(Like(next_id(), user, "t1", draw(users), ts))
        elif choice == "like_burst":  # many likes to one target in a day: reaches the pair limit and cap
            target = draw(users)
            for i in range(draw(st.integers(min_value=1, max_value=9))):
                events.append(Like(next_id(), user, "t1", target, ts + i * 1000))
        elif choice == "login":
            events.append(Login(next_id(), user, "t1", ts))
        elif choice == "login_run":  # logins on consecutive days: login streaks
            for d in range(draw(st.integers(min_value=1, max_value=7))):
                events.append(Login(next_id(), user, "t1", min(ts + d * DAY, D0 + span_days * DAY - 1)))
        elif choice == "activity":
            kind = draw(
                st.sampled_from(["vote", "group_created", "thanks_card", "quality_marked", "feed_view"])
            )
            invited = draw(st.integers(min_value=0, max_value=2)) if kind == "group_created" else None
            target = draw(users) if kind in ("thanks_card", "quality_marked") else None
            group = draw(st.sampled_from(GROUPS)) if kind == "group_created" else None
            events.append(Activity(next_id(), user, "t1", kind, ts, group, invited, target))
        elif choice == "duplicate" and events:
            events.append(draw(st.sampled_from(events)))
        elif choice == "member":
            events.append(Member(user, "t1", D0 - DAY) if draw(st.booleans()) else MemberLeft(user))
    return events


# --- running sequences --------------------------------------------------------------------------


@dataclass
class Run:
    """Everything a run produced, in order; ``log`` pairs each applied item with its outcome."""

    engine: Engine
    store: MemoryStore = field(default_factory=MemoryStore)
    cache: StateCache = field(init=False)
    log: list[tuple[Any, Outcome]] = field(default_factory=list)
    pending: list[Credit] = field(default_factory=list)
    changed: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cache = StateCache(self.store, decode_value, encode_value)

    def apply(self, item: Any) -> Outcome:
        tx = self.cache.begin(0)
        out = self.engine.apply(item, tx, item.user_id.encode())
        self.changed.append(tx.commit())
        self.log.append((item, out))
        return out

    def feed(self, events: list[Any], *, defer_credits: bool = False) -> None:
        for event in events:
            out = self.apply(event)
            if defer_credits:
                self.pending += out.credits
            else:
                for credit in out.credits:
                    self.apply(credit)
        if defer_credits:
            credits, self.pending = self.pending, []
            for credit in credits:
                self.apply(credit)

    def records(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for _, out in self.log:
            result += [award.to_record() for award in out.points]
            result += [badge.to_record() for badge in out.badges]
            result += [{"credit": credit.to_record()} for credit in out.credits]
        return result

    def flush(self) -> None:
        """Store the changed keys, as the worker does at the end of a batch."""
        self.store.write(0, {key: raw for key, (_, raw) in self.cache.take_changes().items()})

    def snapshot(self) -> dict[bytes, bytes]:
        return {k: encode_value(k, v) for k, v in self.cache.values.items() if v is not None}

    def core(self, user: str) -> dict[str, Any]:
        return self.cache.get(0, prefix(user.encode()) + CORE) or {"points": 0}

    def points(self, user: str) -> int:
        return int(self.core(user)["points"])


def new_run(store: MemoryStore | None = None) -> Run:
    return Run(Engine(BOOK, Calendar(TZ)), store if store is not None else MemoryStore())


def credits_of(run: Run) -> list[Credit]:
    return [credit for _, out in run.log for credit in out.credits]


def content(run: Run) -> tuple[Counter[tuple[str, str, str]], Counter[tuple[str, str, str, str]]]:
    """What a run awarded, whatever the order: points by (user, rule, period), badges by identity."""
    points: Counter[tuple[str, str, str]] = Counter()
    badges: Counter[tuple[str, str, str, str]] = Counter()
    for _, out in run.log:
        for award in out.points:
            points[award.user_id, award.rule, award.period] += award.points
        for badge in out.badges:
            badges[badge.user_id, badge.badge, badge.kind, badge.period or ""] += 1
    return points, badges


# --- (1) replaying everything changes nothing ---------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(), defer=st.booleans())
def test_replaying_the_whole_sequence_changes_nothing(events: list[Any], defer: bool) -> None:
    run = new_run()
    run.feed(events, defer_credits=defer)
    run.flush()
    before = dict(run.store.partitions[0])
    credits = credits_of(run)
    replay = new_run(run.store)  # a restarted worker: the store is the truth
    replay.feed(events)
    for credit in credits:
        replay.apply(credit)
    for (item, out), changed in zip(replay.log, replay.changed, strict=True):
        assert (out.points, out.badges, out.credits) == ([], [], []), item
        if not isinstance(item, Member | MemberLeft):  # a roster upsert has no id; it is rewritten as is
            assert out.status in (DUPLICATE, TOO_LATE), item
            assert changed is False, item
    replay.flush()
    assert replay.store.partitions[0] == before


# --- (2) duplicates count once ------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(members=False), data=st.data())
def test_duplicates_anywhere_count_once(events: list[Any], data: st.DataObject) -> None:
    extra = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    positions = data.draw(st.lists(st.integers(0, len(events)), min_size=len(extra), max_size=len(extra)))
    with_dups = list(events)
    for event, at in zip(extra, positions, strict=True):
        # a redelivery comes after the original (the original's first delivery is the one that counts)
        first = next(i for i, e in enumerate(with_dups) if e is event)
        with_dups.insert(max(at, first + 1), event)
    once, twice = new_run(), new_run()
    once.feed(events)
    twice.feed(with_dups)
    assert content(once) == content(twice)
    for user in USERS:
        assert once.points(user) == twice.points(user)
    ids = [r["award_id"] for r in twice.records() if "award_id" in r]
    assert len(ids) == len(set(ids))


# --- (3) points held = points awarded = an independent model ------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(), defer=st.booleans())
def test_state_points_equal_the_sum_of_awarded_points(events: list[Any], defer: bool) -> None:
    run = new_run()
    run.feed(events, defer_credits=defer)
    awarded: Counter[str] = Counter()
    for item, out in run.log:
        for award in out.points:
            assert award.user_id == item.user_id
            assert award.points > 0
            assert award.status == "granted"
            assert award.reason
            awarded[award.user_id] += award.points
    for user in USERS:
        assert run.points(user) == awarded[user]


@PROPERTY_SETTINGS
@given(events=event_sequences(span_days=9, members=False))
def test_points_match_an_independent_model_of_the_rules(events: list[Any]) -> None:
    """Within nine days nothing is too late, so each user's total does not depend on event order."""
    run = new_run()
    run.feed(events)
    assert all(out.status != TOO_LATE for _, out in run.log)
    expected = model_points(events)
    for user in USERS:
        assert run.points(user) == expected[user], user
    levels = Counter(badge.user_id for _, out in run.log for badge in out.badges if badge.kind == "level")
    for user in USERS:
        reached = sum(1 for level in RULES.levels[1:] if expected[user] >= level.min_points)
        assert levels[user] == reached


def model_points(events: list[Any]) -> Counter[str]:
    """Compute every user's points from SPEC's default rules, ignoring event order."""
    unique = list({(e.user_id, e.event_id): e for e in events}.values())
    points: Counter[str] = Counter()
    logins: defaultdict[str, set[int]] = defaultdict(set)  # user -> ordinals of days logged in
    messages_day: Counter[tuple[str, str]] = Counter()
    messages_week: Counter[tuple[str, str]] = Counter()
    messages_life: Counter[str] = Counter()
    groups_week: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    votes_week: set[tuple[str, str]] = set()
    feed_days: set[tuple[str, str]] = set()
    groups_created: Counter[str] = Counter()
    pairs: Counter[tuple[str, str, str]] = Counter()
    for e in unique:
        day = CALENDAR.day_of(e.ts)
        if isinstance(e, Message):
            points[e.user_id] += KIND_POINTS[e.kind]  # message_<kind>
            if e.reply_to_user_id not in (None, e.user_id):
                points[e.user_id] += 3  # reply
            messages_day[e.user_id, day.name] += 1
            messages_week[e.user_id, day.week] += 1
            messages_life[e.user_id] += 1
            if e.group_id is not None:
                groups_week[e.user_id, day.week].add(e.group_id)
        elif isinstance(e, Login):
            logins[e.user_id].add(day.ordinal)
        elif isinstance(e, Like) and e.target_user_id != e.user_id:
            pairs[e.user_id, e.target_user_id, day.name] += 1
        elif isinstance(e, Activity):
            if e.type == "vote":
                points[e.user_id] += 8
                votes_week.add((e.user_id, day.week))
            elif e.type == "group_created" and (e.invited_count or 0) >= 1:
                points[e.user_id] += 15
                groups_created[e.user_id] += 1
            elif e.type == "thanks_card" and e.target_user_id != e.user_id:
                points[e.target_user_id] += 20  # thanks_received; the sender gets nothing
            elif e.type == "quality_marked" and e.target_user_id != e.user_id:
                points[e.target_user_id] += 10  # quality_bonus
            elif e.type == "feed_view":
                feed_days.add((e.user_id, day.name))
    # daily_login 5 a day logged in; weekly_login_streak 30 per week holding a day that ends 5 consecutive days
    for user, days in logins.items():
        points[user] += 5 * len(days)
        streak_weeks = {
            CALENDAR.day_for_ordinal(d).week for d in days if all(d - i in days for i in range(1, 5))
        }
        points[user] += 30 * len(streak_weeks)
    for (user, _), n in messages_day.items():
        points[user] += 5 if n >= 3 else 0  # daily_messages
    for (user, _), n in messages_week.items():
        points[user] += 100 if n >= 100 else 0  # weekly_active_100
    for user, n in messages_life.items():
        points[user] += 50 if n >= 1000 else 0  # messages_1000
    for (user, _), groups in groups_week.items():
        points[user] += 30 if len(groups) >= 3 else 0  # weekly_groups
    for user, _ in votes_week:
        points[user] += 30  # weekly_vote
    for user, _ in feed_days:
        points[user] += 5  # daily_feed_view
    for user, n in groups_created.items():
        points[user] += 50 if n >= 5 else 0  # groups_created_5
    # likes: at most 5 a day from one person to the same person count; like_given 1 each, at most 10 a day;
    # daily_likes 5 for 2 counted likes in a day; likes_received_100 50 for 100 counted likes received
    counted_per_day: Counter[tuple[str, str]] = Counter()
    received: Counter[str] = Counter()
    for (liker, target, day_name), n in pairs.items():
        counted_per_day[liker, day_name] += min(n, 5)
        received[target] += min(n, 5)
    for (liker, _), n in counted_per_day.items():
        points[liker] += min(n, 10) + (5 if n >= 2 else 0)
    for user, n in received.items():
        points[user] += 50 if n >= 100 else 0
    return points


# --- (4) caps and limits --------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(span_days=3))
def test_like_cap_and_pair_limit_hold(events: list[Any]) -> None:
    run = new_run()
    run.feed(events)
    like_points: Counter[tuple[str, str]] = Counter()
    counted: Counter[tuple[str, str, str]] = Counter()
    received: Counter[tuple[str, str, str]] = Counter()
    offered: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for item, out in run.log:
        if isinstance(item, Like):
            day = CALENDAR.day_of(item.ts).name
            if item.target_user_id == item.user_id:
                assert out.status in (IGNORED, DUPLICATE)
                assert out.points == [] and out.credits == []
                continue
            offered[item.user_id, item.target_user_id, day].add(item.event_id)
            if out.status == APPLIED:
                counted[item.user_id, item.target_user_id, day] += 1
                assert len(out.credits) == 1
            else:
                assert out.credits == []
            for award in out.points:
                assert award.period == day
                assert award.rule in ("like_given", "daily_likes")
                if award.rule == "like_given":
                    like_points[item.user_id, day] += award.points
        elif isinstance(item, Credit) and item.kind == "like" and out.status == APPLIED:
            received[item.from_user_id, item.user_id, CALENDAR.day_of(item.ts).name] += 1
    assert all(points <= 10 for points in like_points.values())
    assert all(n <= 5 for n in counted.values())
    assert received == counted
    for pair_day, ids in offered.items():
        assert counted[pair_day] == min(5, len(ids))
    per_liker_day: Counter[tuple[str, str]] = Counter()
    for (liker, _, day), n in counted.items():
        per_liker_day[liker, day] += n
    for key, n in per_liker_day.items():
        assert like_points[key] == min(10, n)


# --- (5) determinism and order ---------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(), defer=st.booleans())
def test_two_fresh_runs_give_identical_award_records(events: list[Any], defer: bool) -> None:
    a, b = new_run(), new_run()
    a.feed(events, defer_credits=defer)
    b.feed(events, defer_credits=defer)
    assert a.records() == b.records()
    assert a.snapshot() == b.snapshot()
    assert a.cache.take_changes() == b.cache.take_changes()
    ids = [record["award_id"] for record in a.records() if "award_id" in record]
    assert len(ids) == len(set(ids))


@PROPERTY_SETTINGS
@given(events=event_sequences(span_days=9, members=False), data=st.data())
def test_what_is_awarded_does_not_depend_on_the_order_of_events(
    events: list[Any], data: st.DataObject
) -> None:
    """Within the retention, any order pays the same points per user, rule and period, and the same badges.

    (Which like a cap or pair limit leaves unpaid, and which event completes a task, depend on the order;
    how much each rule pays in each period does not.)
    """
    shuffled = data.draw(st.permutations(events))
    a, b = new_run(), new_run()
    a.feed(events)
    b.feed(shuffled)
    assert content(a) == content(b)
    # a threshold's award id names its rule, user and period, never the event that reached it
    thresholds = {name for name, rule in RULES.rules.items() if rule.counter is not None}

    def period_ids(run: Run) -> set[str]:
        return {r["award_id"] for r in run.records() if r.get("rule") in thresholds or "badge" in r}

    assert period_ids(a) == period_ids(b)
    for user in USERS:
        assert a.points(user) == b.points(user)


# --- (6) state round trip -------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(), data=st.data())
def test_storing_and_reloading_the_state_does_not_change_later_results(
    events: list[Any], data: st.DataObject
) -> None:
    split = data.draw(st.integers(min_value=0, max_value=len(events)))
    straight = new_run()
    straight.feed(events[:split])
    mark = len(straight.log)
    straight.feed(events[split:])

    first = new_run()
    first.feed(events[:split])
    first.flush()
    second = new_run(first.store)  # a new cache over the stored keys: everything decoded again
    second.feed(events[split:])

    assert second.log == straight.log[mark:]
    second.flush()
    straight.flush()
    assert second.store.partitions.get(0, {}) == straight.store.partitions.get(0, {})


# --- events spread beyond the retention -----------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sequences(span_days=80, members=False))
def test_long_spans_keep_the_invariants(events: list[Any]) -> None:
    run = new_run()
    run.feed(events)
    awarded: Counter[str] = Counter()
    for _, out in run.log:
        for award in out.points:
            awarded[award.user_id] += award.points
    for (_, out), changed in zip(run.log, run.changed, strict=True):
        if out.status == TOO_LATE:
            assert (out.points, out.badges, out.credits, changed) == ([], [], [], False)
    for user in USERS:
        assert run.points(user) == awarded[user]
        core = run.core(user)
        if "wm" not in core:
            continue
        horizon = core["wm"] - RETENTION
        assert all(end > horizon for kind in ("weeks", "months") for end in core[kind].values())
        p = prefix(user.encode())
        for key, value in run.cache.values.items():
            name = key[len(p) :]
            if key.startswith(p) and value is not None and name[:2] == b"d:":
                day = CALENDAR.day_for_date(date.fromisoformat(name[2:].decode()))
                assert day.end_ms > horizon, (user, name)
    replay = new_run(run.store)
    run.flush()
    replay.feed(events)
    assert all(out.status in (DUPLICATE, TOO_LATE) for _, out in replay.log)
    assert not any(replay.changed)
