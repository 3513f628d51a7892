"""Property tests of the rule engine: random event sequences for a few users over a few days.

Credits are applied to their receivers' states, so every point a user holds can be traced to an award.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.engine.credits import Credit
from stream.engine.periods import Calendar
from stream.engine.processor import APPLIED, DUPLICATE, IGNORED, TOO_LATE, Engine, Outcome
from stream.engine.state import UserState
from stream.events import Activity, Like, Login, Member, MemberLeft, Message
from stream.rules import load_rules

RULES = load_rules()
TZ = "Asia/Shanghai"
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # 2026-11-23 00:00 in Shanghai, a Monday
USERS = ("u1", "u2", "u3")
KIND_POINTS = {"text": 2, "voice": 5, "video": 5, "file": 10, "image": 10}
CALENDAR = Calendar(TZ)

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

    for _ in range(draw(st.integers(min_value=1, max_value=25))):
        choice = draw(
            st.sampled_from(
                ["message", "burst", "like", "like_burst", "login", "activity", "duplicate", "member"]
                if members
                else ["message", "burst", "like", "like_burst", "login", "activity", "duplicate"]
            )
        )
        user, ts = draw(users), draw(times)
        if choice == "message":
            reply_to = draw(st.one_of(st.none(), users))
            events.append(
                Message(next_id(), user, "t1", draw(st.sampled_from(list(KIND_POINTS))), ts, None, reply_to)
            )
        elif choice == "burst":  # many messages in a day: reaches the weekly threshold and levels
            kind = draw(st.sampled_from(list(KIND_POINTS)))
            for i in range(draw(st.integers(min_value=1, max_value=120))):
                events.append(Message(next_id(), user, "t1", kind, ts + i, None, None))
        elif choice == "like":
            events.append(Like(next_id(), user, "t1", draw(users), ts))
        elif choice == "like_burst":  # many likes to one target in a day: reaches the pair limit and cap
            target = draw(users)
            for i in range(draw(st.integers(min_value=1, max_value=9))):
                events.append(Like(next_id(), user, "t1", target, ts + i * 1000))
        elif choice == "login":
            events.append(Login(next_id(), user, "t1", ts))
        elif choice == "activity":
            kind = draw(
                st.sampled_from(["vote", "group_created", "thanks_card", "quality_marked", "feed_view"])
            )
            invited = draw(st.integers(min_value=0, max_value=2)) if kind == "group_created" else None
            target = draw(users) if kind in ("thanks_card", "quality_marked") else None
            events.append(Activity(next_id(), user, "t1", kind, ts, None, invited, target))
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
    states: defaultdict[str, UserState] = field(default_factory=lambda: defaultdict(UserState))
    log: list[tuple[Any, Outcome]] = field(default_factory=list)
    pending: list[Credit] = field(default_factory=list)

    def apply(self, item: Any) -> Outcome:
        out = self.engine.apply(item, self.states[item.user_id])
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

    def snapshot(self) -> dict[str, bytes]:
        return {user: state.encode() for user, state in self.states.items()}


def new_run(states: dict[str, UserState] | None = None) -> Run:
    run = Run(Engine(RULES, Calendar(TZ)))
    if states:
        run.states.update(states)
    return run


def credits_of(run: Run) -> list[Credit]:
    return [credit for _, out in run.log for credit in out.credits]


# --- (1) replaying everything changes nothing ---------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(), defer=st.booleans())
def test_replaying_the_whole_sequence_changes_nothing(events: list[Any], defer: bool) -> None:
    run = new_run()
    run.feed(events, defer_credits=defer)
    before = run.snapshot()
    credits = credits_of(run)
    replay = new_run(run.states)
    replay.feed(events)
    for credit in credits:
        replay.apply(credit)
    for item, out in replay.log:
        assert (out.points, out.badges, out.credits) == ([], [], []), item
        if not isinstance(item, Member | MemberLeft):  # a roster upsert has no id; it is rewritten as is
            assert out.status in (DUPLICATE, TOO_LATE), item
            assert out.changed is False, item
    assert replay.snapshot() == before


# --- (2) points held = points awarded -----------------------------------------------------------


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
            awarded[award.user_id] += award.points
    for user in USERS:
        assert run.states[user].doc["points"] == awarded[user]


@PROPERTY_SETTINGS
@given(events=event_sequences(members=False))
def test_points_match_an_independent_model_of_the_rules(events: list[Any]) -> None:
    """Within a few days nothing is too late, so each user's total does not depend on event order."""
    run = new_run()
    run.feed(events)
    assert all(out.status != TOO_LATE for _, out in run.log)
    expected = model_points(events)
    for user in USERS:
        assert run.states[user].doc["points"] == expected[user], user
    levels = Counter(badge.user_id for _, out in run.log for badge in out.badges)
    for user in USERS:
        reached = sum(1 for level in RULES.levels[1:] if expected[user] >= level.min_points)
        assert levels[user] == reached


def model_points(events: list[Any]) -> Counter[str]:
    """Compute every user's points from the default rules, ignoring event order."""
    unique = list({(e.user_id, e.event_id): e for e in events}.values())
    points: Counter[str] = Counter()
    logins: set[tuple[str, str]] = set()
    weekly: Counter[tuple[str, str]] = Counter()
    pairs: Counter[tuple[str, str, str]] = Counter()
    for e in unique:
        day = CALENDAR.day_of(e.ts)
        if isinstance(e, Message):
            points[e.user_id] += KIND_POINTS[e.kind]
            if e.reply_to_user_id not in (None, e.user_id):
                points[e.user_id] += 3
            weekly[e.user_id, day.week] += 1
        elif isinstance(e, Login):
            logins.add((e.user_id, day.name))
        elif isinstance(e, Like) and e.target_user_id != e.user_id:
            pairs[e.user_id, e.target_user_id, day.name] += 1
        elif isinstance(e, Activity):
            if e.type == "vote":
                points[e.user_id] += 8
            elif e.type == "group_created" and (e.invited_count or 0) >= 1:
                points[e.user_id] += 15
            elif e.type == "thanks_card" and e.target_user_id != e.user_id:
                points[e.target_user_id] += 20
            elif e.type == "quality_marked" and e.target_user_id != e.user_id:
                points[e.target_user_id] += 10
    for user, _ in logins:
        points[user] += 5
    for (user, _), n in weekly.items():
        points[user] += 100 if n >= 100 else 0
    counted_per_day: Counter[tuple[str, str]] = Counter()
    for (liker, _, day_name), n in pairs.items():
        counted_per_day[liker, day_name] += min(n, 5)
    for (liker, _), n in counted_per_day.items():
        points[liker] += min(n, 10)
    return points


# --- (3) caps and limits --------------------------------------------------------------------------


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
                assert award.rule == "like_given" and award.period == day
                like_points[item.user_id, day] += award.points
        elif isinstance(item, Credit) and item.kind == "like_received" and out.status == APPLIED:
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


# --- (4) determinism ----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(), defer=st.booleans())
def test_two_fresh_runs_give_identical_awards(events: list[Any], defer: bool) -> None:
    a, b = new_run(), new_run()
    a.feed(events, defer_credits=defer)
    b.feed(events, defer_credits=defer)
    assert a.records() == b.records()
    assert a.snapshot() == b.snapshot()
    ids = [record["award_id"] for record in a.records() if "award_id" in record]
    assert len(ids) == len(set(ids))


# --- (5) state round trip -------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(events=event_sequences(), data=st.data())
def test_state_round_trip_does_not_change_later_results(events: list[Any], data: st.DataObject) -> None:
    split = data.draw(st.integers(min_value=0, max_value=len(events)))
    straight = new_run()
    straight.feed(events[:split])
    mark = len(straight.log)
    straight.feed(events[split:])

    first = new_run()
    first.feed(events[:split])
    restored = {user: UserState.decode(state.encode()) for user, state in first.states.items()}
    for user, state in restored.items():
        assert state.doc == first.states[user].doc
    second = new_run(restored)
    second.feed(events[split:])

    assert second.log == straight.log[mark:]
    assert second.snapshot() == straight.snapshot()


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
    for user in USERS:
        state = run.states[user]
        assert state.doc["points"] == awarded[user]
        horizon = state.doc["wm"] - RULES.time.retention_days * DAY
        for key in ("days", "weeks", "months"):
            assert all(bucket["end"] > horizon for bucket in state.doc[key].values())
    for _, out in run.log:
        if out.status == TOO_LATE:
            assert (out.points, out.badges, out.credits, out.changed) == ([], [], [], False)
    replay = new_run(run.states)
    replay.feed(events)
    assert all(out.status in (DUPLICATE, TOO_LATE) and not out.changed for _, out in replay.log)
