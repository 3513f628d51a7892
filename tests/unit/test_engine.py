"""Unit tests of the rule engine (stream.engine): every base rule, caps, dedup, time, levels and award ids."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from importlib import resources
from typing import Any

import pytest
import yaml

from stream.engine.awards import BadgeAward, PointAward, award_id
from stream.engine.credits import LIKE_RECEIVED, QUALITY_BONUS, THANKS_RECEIVED, Credit
from stream.engine.periods import Calendar
from stream.engine.processor import APPLIED, DUPLICATE, IGNORED, TOO_LATE, Engine, Outcome
from stream.engine.state import UserState
from stream.events import Activity, Like, Login, Member, MemberLeft, Message
from stream.rules import Rules, load_rules
from stream.rules.model import parse_rules

RULES = load_rules()
VERSION = "2026-11-23.1"
TZ = "Asia/Shanghai"
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # 2026-11-23 00:00 in Shanghai: a Monday, the first day of 2026-W48
NOON = D0 + 12 * HOUR

_ids = itertools.count(1)


def new_id(prefix: str = "e") -> str:
    return f"{prefix}{next(_ids)}"


def msg(
    user: str,
    ts: int,
    kind: str = "text",
    *,
    reply_to: str | None = None,
    team: str = "t1",
    event_id: str | None = None,
) -> Message:
    return Message(event_id or new_id("m"), user, team, kind, ts, reply_to_user_id=reply_to)


def like(user: str, target: str, ts: int, *, team: str = "t1", event_id: str | None = None) -> Like:
    return Like(event_id or new_id("l"), user, team, target, ts)


def login(user: str, ts: int, *, team: str = "t1", event_id: str | None = None) -> Login:
    return Login(event_id or new_id("in"), user, team, ts)


def act(
    user: str,
    kind: str,
    ts: int,
    *,
    target: str | None = None,
    invited: int | None = None,
    team: str = "t1",
    event_id: str | None = None,
) -> Activity:
    group = "g1" if kind == "group_created" else None
    return Activity(event_id or new_id("a"), user, team, kind, ts, group, invited, target)


def rules_with(changes: dict[str, Any]) -> Rules:
    """Return the default rules with dotted paths (``rules.vote.points``) set to new values."""
    doc = yaml.safe_load(resources.files("stream.rules").joinpath("default.yaml").read_text(encoding="utf-8"))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    return parse_rules(yaml.safe_dump(doc))


class World:
    """One engine and the states of every user; ``deliver`` applies credits to their receivers."""

    def __init__(self, rules: Rules = RULES) -> None:
        self.engine = Engine(rules, Calendar(TZ))
        self.states: defaultdict[str, UserState] = defaultdict(UserState)

    def apply(self, event: Any) -> Outcome:
        return self.engine.apply(event, self.states[event.user_id])

    def apply_all(self, events: list[Any]) -> list[Outcome]:
        return [self.apply(event) for event in events]

    def deliver(self, outcome: Outcome) -> list[Outcome]:
        return [self.apply(credit) for credit in outcome.credits]

    def points(self, user: str) -> int:
        return int(self.states[user].doc["points"])


def paid(out: Outcome) -> list[tuple[str, int]]:
    return [(award.rule, award.points) for award in out.points]


def fresh(event: Any, rules: Rules = RULES) -> Outcome:
    return Engine(rules, Calendar(TZ)).apply(event, UserState())


# --- messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "points"), [("text", 2), ("voice", 5), ("video", 5), ("file", 10), ("image", 10)]
)
def test_message_kind_points(kind: str, points: int) -> None:
    state = UserState()
    out = Engine(RULES, Calendar(TZ)).apply(msg("u1", NOON, kind, event_id="m1"), state)
    assert (out.status, out.reason, out.changed) == (APPLIED, None, True)
    assert out.badges == [] and out.credits == []
    assert out.points == [
        PointAward(
            award_id=award_id("message_" + kind, "u1", "m1"),
            user_id="u1",
            team_id="t1",
            points=points,
            rule="message_" + kind,
            period="2026-11-23",
            source_event_id="m1",
            rules_version=VERSION,
            ts=NOON,
            status="granted",
        )
    ]
    assert state.doc["points"] == points


def test_point_award_wire_format() -> None:
    out = fresh(msg("u1", NOON, "voice", event_id="m9"))
    assert out.points[0].to_record() == {
        "award_id": award_id("message_voice", "u1", "m9"),
        "user_id": "u1",
        "team_id": "t1",
        "points": 5,
        "rule": "message_voice",
        "status": "granted",
        "period": "2026-11-23",
        "source_event_id": "m9",
        "rules_version": VERSION,
        "ts": NOON,
    }


@pytest.mark.parametrize(
    ("kind", "points"), [("text", 2), ("voice", 5), ("video", 5), ("file", 10), ("image", 10)]
)
def test_reply_to_another_user_adds_three(kind: str, points: int) -> None:
    state = UserState()
    out = Engine(RULES, Calendar(TZ)).apply(msg("u1", NOON, kind, reply_to="u2", event_id="m1"), state)
    assert paid(out) == [("message_" + kind, points), ("reply", 3)]
    assert out.points[1].award_id == award_id("reply", "u1", "m1")
    assert out.points[1].period == "2026-11-23"
    assert out.credits == []
    assert state.doc["points"] == points + 3


def test_reply_to_oneself_earns_no_reply_points() -> None:
    assert paid(fresh(msg("u1", NOON, reply_to="u1"))) == [("message_text", 2)]


def test_message_without_reply_earns_no_reply_points() -> None:
    assert paid(fresh(msg("u1", NOON, "file"))) == [("message_file", 10)]


# --- activities ---------------------------------------------------------------------------------


def test_vote_earns_eight() -> None:
    out = fresh(act("u1", "vote", NOON, event_id="v1"))
    assert (out.status, paid(out)) == (APPLIED, [("vote", 8)])
    assert out.points[0].award_id == award_id("vote", "u1", "v1")


@pytest.mark.parametrize("invited", [1, 2, 50])
def test_group_created_with_members_earns_fifteen(invited: int) -> None:
    out = fresh(act("u1", "group_created", NOON, invited=invited))
    assert (out.status, out.reason, paid(out)) == (APPLIED, None, [("group_created", 15)])


@pytest.mark.parametrize("invited", [0, None])
def test_group_created_without_members_earns_nothing(invited: int | None) -> None:
    state = UserState()
    out = Engine(RULES, Calendar(TZ)).apply(act("u1", "group_created", NOON, invited=invited), state)
    assert (out.status, out.reason, out.points, out.credits) == (IGNORED, "group_without_members", [], [])
    assert state.doc["points"] == 0


def test_feed_view_earns_nothing_but_is_recorded() -> None:
    state = UserState()
    out = Engine(RULES, Calendar(TZ)).apply(act("u1", "feed_view", NOON), state)
    assert (out.status, out.reason, out.points, out.badges, out.credits) == (APPLIED, None, [], [], [])
    assert out.changed is True
    assert state.doc["points"] == 0


# --- daily login --------------------------------------------------------------------------------


def test_daily_login_once_per_local_day() -> None:
    world = World()
    first = world.apply(login("u1", D0 + 8 * HOUR, event_id="in1"))
    assert paid(first) == [("daily_login", 5)]
    assert first.points[0].period == "2026-11-23"
    assert first.points[0].award_id == award_id("daily_login", "u1", "2026-11-23")
    assert first.points[0].source_event_id == "in1"
    second = world.apply(login("u1", D0 + 20 * HOUR))
    assert (second.status, second.points, second.changed) == (APPLIED, [], True)
    last_minute = world.apply(login("u1", D0 + DAY - 1))
    assert last_minute.points == []
    next_day = world.apply(login("u1", D0 + DAY))  # 2026-11-24 00:00 local
    assert paid(next_day) == [("daily_login", 5)]
    assert next_day.points[0].period == "2026-11-24"
    assert next_day.points[0].award_id == award_id("daily_login", "u1", "2026-11-24")
    assert world.points("u1") == 10


def test_daily_login_follows_the_local_day_not_the_utc_day() -> None:
    world = World()
    # 2026-11-22 23:30 UTC and 2026-11-23 01:00 UTC are both 2026-11-23 in Shanghai
    assert paid(world.apply(login("u1", D0 + 7 * HOUR + 30 * MINUTE))) == [("daily_login", 5)]
    assert world.apply(login("u1", D0 + 9 * HOUR)).points == []
    # 2026-11-23 15:59:59.999 UTC is still the 23rd; 16:00 UTC is the 24th
    assert world.apply(login("u1", D0 + DAY - 1)).points == []
    assert paid(world.apply(login("u1", D0 + DAY))) == [("daily_login", 5)]


def test_daily_login_award_id_is_the_same_whichever_login_triggered_it() -> None:
    a = fresh(login("u1", D0 + HOUR, event_id="first"))
    b = fresh(login("u1", D0 + 23 * HOUR, event_id="other"))
    assert a.points[0].award_id == b.points[0].award_id
    assert a.points[0].source_event_id != b.points[0].source_event_id
    c = fresh(login("u1", D0 + DAY + HOUR, event_id="first"))
    assert c.points[0].award_id != a.points[0].award_id
    d = fresh(login("u2", D0 + HOUR, event_id="first"))
    assert d.points[0].award_id != a.points[0].award_id


# --- likes --------------------------------------------------------------------------------------


def test_counted_like_earns_one_and_credits_the_target() -> None:
    state = UserState()
    out = Engine(RULES, Calendar(TZ)).apply(like("u1", "u2", NOON, event_id="l1"), state)
    assert (out.status, paid(out)) == (APPLIED, [("like_given", 1)])
    assert out.points[0].award_id == award_id("like_given", "u1", "l1")
    assert out.credits == [Credit("u2", LIKE_RECEIVED, "u1", "t1", "l1", NOON)]
    assert out.credits[0].event_id == "like_received:l1"


def test_like_given_is_capped_at_ten_points_a_day() -> None:
    world = World()
    targets = ["u2"] * 5 + ["u3"] * 5
    outs = [world.apply(like("u1", target, NOON + i * MINUTE)) for i, target in enumerate(targets)]
    assert [paid(out) for out in outs] == [[("like_given", 1)]] * 10
    eleventh = world.apply(like("u1", "u4", NOON + HOUR, event_id="l11"))
    assert (eleventh.status, eleventh.reason, eleventh.points) == (APPLIED, None, [])
    # the like still counts: its target is credited
    assert eleventh.credits == [Credit("u4", LIKE_RECEIVED, "u1", "t1", "l11", NOON + HOUR)]
    assert world.apply(like("u1", "u5", NOON + 2 * HOUR)).points == []
    assert world.points("u1") == 10
    next_day = world.apply(like("u1", "u4", NOON + DAY))
    assert paid(next_day) == [("like_given", 1)]
    assert next_day.points[0].period == "2026-11-24"
    assert world.points("u1") == 11


def test_self_like_is_ignored() -> None:
    state = UserState()
    out = Engine(RULES, Calendar(TZ)).apply(like("u1", "u1", NOON), state)
    assert (out.status, out.reason, out.points, out.credits) == (IGNORED, "self_like", [], [])
    assert state.doc["points"] == 0


def test_self_likes_use_up_neither_cap_nor_pair_limit() -> None:
    world = World()
    for i in range(20):
        assert world.apply(like("u1", "u1", NOON + i)).reason == "self_like"
    outs = world.apply_all([like("u1", t, NOON + HOUR + i) for i, t in enumerate(["u2"] * 5 + ["u3"] * 5)])
    assert all(paid(out) == [("like_given", 1)] for out in outs)


def test_sixth_like_to_the_same_target_in_a_day_is_ignored() -> None:
    world = World()
    outs = world.apply_all([like("u1", "u2", NOON + i * MINUTE) for i in range(5)])
    assert all(out.status == APPLIED and len(out.credits) == 1 for out in outs)
    sixth = world.apply(like("u1", "u2", NOON + HOUR))
    assert (sixth.status, sixth.reason, sixth.points, sixth.credits) == (IGNORED, "like_pair_limit", [], [])
    assert world.apply(like("u1", "u2", NOON + 2 * HOUR)).reason == "like_pair_limit"
    other = world.apply(like("u1", "u3", NOON + 3 * HOUR, event_id="l-u3"))
    assert (other.status, paid(other)) == (APPLIED, [("like_given", 1)])
    assert other.credits == [Credit("u3", LIKE_RECEIVED, "u1", "t1", "l-u3", NOON + 3 * HOUR)]
    assert world.points("u1") == 6


def test_pair_limit_resets_the_next_local_day() -> None:
    world = World()
    world.apply_all([like("u1", "u2", D0 + DAY - 10 + i) for i in range(5)])  # the last ms of 2026-11-23
    assert world.apply(like("u1", "u2", D0 + DAY - 1)).reason == "like_pair_limit"
    next_day = world.apply(like("u1", "u2", D0 + DAY))
    assert (next_day.status, paid(next_day)) == (APPLIED, [("like_given", 1)])
    assert len(next_day.credits) == 1


def test_pair_limit_is_per_liker() -> None:
    world = World()
    world.apply_all([like("u1", "u3", NOON + i) for i in range(5)])
    out = world.apply(like("u2", "u3", NOON + 10))
    assert (out.status, paid(out)) == (APPLIED, [("like_given", 1)])


def test_ignored_likes_do_not_use_up_the_daily_cap() -> None:
    world = World()
    world.apply_all([like("u1", "u2", NOON + i) for i in range(8)])  # 5 counted, 3 over the pair limit
    outs = world.apply_all([like("u1", t, NOON + 100 + i) for i, t in enumerate(["u3"] * 5 + ["u4"] * 2)])
    assert [sum(points for _, points in paid(out)) for out in outs] == [1, 1, 1, 1, 1, 0, 0]
    assert world.points("u1") == 10


def test_like_received_credit_counts_but_earns_nothing() -> None:
    world = World()
    given = world.apply(like("u1", "u2", NOON, event_id="l1"))
    [received] = world.deliver(given)
    assert (received.status, received.points, received.badges, received.changed) == (APPLIED, [], [], True)
    assert world.points("u2") == 0
    assert world.states["u2"].doc["life"] == {"like_received": 1}


# --- thanks and quality marks -------------------------------------------------------------------


def test_thanks_card_credits_the_target_and_the_sender_gets_nothing() -> None:
    world = World()
    out = world.apply(act("u1", "thanks_card", NOON, target="u2", event_id="th1"))
    assert (out.status, out.points, out.badges) == (APPLIED, [], [])
    assert out.credits == [Credit("u2", THANKS_RECEIVED, "u1", "t1", "th1", NOON)]
    assert world.points("u1") == 0
    [received] = world.deliver(out)
    assert received.status == APPLIED
    assert received.points == [
        PointAward(
            award_id=award_id("thanks_received", "u2", "th1"),
            user_id="u2",
            team_id="t1",
            points=20,
            rule="thanks_received",
            period="2026-11-23",
            source_event_id="th1",
            rules_version=VERSION,
            ts=NOON,
        )
    ]
    assert world.points("u2") == 20


def test_quality_mark_credits_a_quality_bonus() -> None:
    world = World()
    out = world.apply(act("u9", "quality_marked", NOON, target="u2", event_id="q1"))
    assert (out.status, out.points) == (APPLIED, [])
    assert out.credits == [Credit("u2", QUALITY_BONUS, "u9", "t1", "q1", NOON)]
    [received] = world.deliver(out)
    assert paid(received) == [("quality_bonus", 10)]
    assert received.points[0].award_id == award_id("quality_bonus", "u2", "q1")
    assert world.points("u2") == 10
    assert world.points("u9") == 0


@pytest.mark.parametrize("kind", ["thanks_card", "quality_marked"])
def test_thanks_or_quality_mark_to_oneself_is_ignored(kind: str) -> None:
    out = fresh(act("u1", kind, NOON, target="u1"))
    assert (out.status, out.reason, out.points, out.credits) == (IGNORED, "self_" + kind, [], [])


def test_thanks_and_quality_are_not_capped() -> None:
    world = World()
    for i in range(30):
        world.deliver(world.apply(act(f"s{i}", "thanks_card", NOON + i, target="u2")))
    assert world.points("u2") == 600


def test_credit_award_uses_the_receivers_known_team() -> None:
    world = World()
    world.apply(msg("u2", NOON - HOUR, team="t2"))
    [received] = world.deliver(world.apply(act("u1", "thanks_card", NOON, target="u2")))
    assert received.points[0].team_id == "t2"


def test_credit_award_uses_the_roster_team_when_the_receiver_has_no_events() -> None:
    world = World()
    assert world.apply(Member("u2", "tR", D0 - 30 * DAY)).changed is True
    [received] = world.deliver(world.apply(act("u1", "thanks_card", NOON, target="u2")))
    assert received.points[0].team_id == "tR"


def test_credit_award_falls_back_to_the_senders_team() -> None:
    world = World()
    [received] = world.deliver(world.apply(act("u1", "quality_marked", NOON, target="u2", team="tS")))
    assert received.points[0].team_id == "tS"


def test_credit_record_round_trip() -> None:
    credit = Credit("u2", THANKS_RECEIVED, "u1", "t1", "th1", NOON)
    assert credit.to_record() == {
        "user_id": "u2",
        "kind": "thanks_received",
        "from_user_id": "u1",
        "team_id": "t1",
        "source_event_id": "th1",
        "ts": NOON,
    }
    assert Credit.from_record(credit.to_record()) == credit


def test_credit_from_a_malformed_record() -> None:
    record = Credit("u2", THANKS_RECEIVED, "u1", "t1", "th1", NOON).to_record()
    with pytest.raises(ValueError, match="unknown credit kind"):
        Credit.from_record({**record, "kind": "bribe"})
    with pytest.raises(KeyError):
        Credit.from_record({k: v for k, v in record.items() if k != "source_event_id"})


# --- roster -------------------------------------------------------------------------------------


def test_member_and_member_left_change_state_without_awards() -> None:
    state = UserState()
    engine = Engine(RULES, Calendar(TZ))
    out = engine.apply(Member("u1", "tR", D0), state)
    assert (out.status, out.points, out.badges, out.credits, out.changed) == (APPLIED, [], [], [], True)
    assert state.team == "tR"
    assert state.doc["left"] is False
    out = engine.apply(MemberLeft("u1"), state)
    assert (out.status, out.points, out.changed) == (APPLIED, [], True)
    assert state.doc["left"] is True


# --- the team an award names --------------------------------------------------------------------


def test_award_names_the_team_of_its_own_event_after_a_team_change() -> None:
    world = World()
    assert world.apply(msg("u1", NOON, team="t1")).points[0].team_id == "t1"
    moved = world.apply(msg("u1", NOON + HOUR, team="t2"))
    assert world.states["u1"].team == "t2"
    assert [award.team_id for award in moved.points] == ["t2"]


def test_own_award_is_not_labelled_with_the_team_of_a_credit_sender() -> None:
    world = World()
    world.deliver(world.apply(act("u1", "thanks_card", NOON, target="u2", team="t1")))
    own = world.apply(msg("u2", NOON + HOUR, team="t2"))
    assert [award.team_id for award in own.points] == ["t2"]


# --- de-duplication -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        msg("u1", NOON, reply_to="u2", event_id="dup-m"),
        like("u1", "u2", NOON, event_id="dup-l"),
        like("u1", "u1", NOON, event_id="dup-self"),
        login("u1", NOON, event_id="dup-in"),
        act("u1", "vote", NOON, event_id="dup-v"),
        act("u1", "group_created", NOON, invited=2, event_id="dup-g"),
        act("u1", "group_created", NOON, invited=0, event_id="dup-g0"),
        act("u1", "thanks_card", NOON, target="u2", event_id="dup-t"),
        act("u1", "quality_marked", NOON, target="u2", event_id="dup-q"),
        act("u1", "feed_view", NOON, event_id="dup-f"),
    ],
    ids=lambda e: e.event_id,
)
def test_the_same_event_twice_counts_once(event: Any) -> None:
    state = UserState()
    engine = Engine(RULES, Calendar(TZ))
    first = engine.apply(event, state)
    assert first.status in (APPLIED, IGNORED)
    snapshot = state.encode()
    again = engine.apply(event, state)
    assert again == Outcome(status=DUPLICATE, reason=None, points=[], badges=[], credits=[], changed=False)
    assert state.encode() == snapshot


def test_duplicate_is_recognised_after_other_events() -> None:
    world = World()
    first = msg("u1", NOON, "file", event_id="m1")
    world.apply(first)
    world.apply_all([msg("u1", NOON + i * MINUTE) for i in range(1, 20)])
    world.apply(msg("u1", NOON + 2 * DAY))
    points = world.points("u1")
    assert world.apply(first).status == DUPLICATE
    assert world.points("u1") == points


@pytest.mark.parametrize("shift", [DAY, -DAY, 3 * DAY, 7 * DAY])
def test_a_redelivery_stamped_on_another_day_counts_once(shift: int) -> None:
    world = World()
    world.apply(msg("u1", NOON, event_id="e1"))
    points = world.points("u1")
    again = world.apply(msg("u1", NOON + shift, event_id="e1"))
    assert again.status == DUPLICATE
    assert (again.points, world.points("u1")) == ([], points)


def test_duplicate_likes_do_not_use_up_the_pair_limit() -> None:
    world = World()
    likes = [like("u1", "u2", NOON + i) for i in range(4)]
    world.apply_all(likes)
    assert [world.apply(likes[0]).status for _ in range(3)] == [DUPLICATE] * 3
    fifth = world.apply(like("u1", "u2", NOON + 10))
    assert (fifth.status, paid(fifth)) == (APPLIED, [("like_given", 1)])
    assert world.apply(like("u1", "u2", NOON + 11)).reason == "like_pair_limit"


def test_the_same_credit_twice_counts_once() -> None:
    world = World()
    out = world.apply(act("u1", "thanks_card", NOON, target="u2"))
    [first] = world.deliver(out)
    assert paid(first) == [("thanks_received", 20)]
    [again] = world.deliver(out)
    assert (again.status, again.points, again.changed) == (DUPLICATE, [], False)
    assert world.points("u2") == 20


def test_like_received_credit_twice_counts_once() -> None:
    world = World()
    out = world.apply(like("u1", "u2", NOON))
    world.deliver(out)
    [again] = world.deliver(out)
    assert (again.status, again.changed) == (DUPLICATE, False)
    assert world.states["u2"].doc["life"] == {"like_received": 1}


def test_credits_of_different_kinds_from_one_source_id_are_distinct() -> None:
    state = UserState()
    engine = Engine(RULES, Calendar(TZ))
    a = engine.apply(Credit("u2", THANKS_RECEIVED, "u1", "t1", "x", NOON), state)
    b = engine.apply(Credit("u2", QUALITY_BONUS, "u1", "t1", "x", NOON), state)
    assert (paid(a), paid(b)) == ([("thanks_received", 20)], [("quality_bonus", 10)])


# --- weekly_active_100 ---------------------------------------------------------------------------


def test_hundredth_message_of_the_week_earns_a_hundred_once() -> None:
    world = World()
    # spread over the whole ISO week 2026-W48: Monday 00:00 to Sunday 23:59 local
    times = [D0 + i * (7 * DAY - 1) // 99 for i in range(100)]
    assert times[-1] == D0 + 7 * DAY - 1
    outs = world.apply_all([msg("u1", ts, event_id=f"w{i}") for i, ts in enumerate(times)])
    assert all(paid(out) == [("message_text", 2)] for out in outs[:99])
    assert paid(outs[99]) == [("message_text", 2), ("weekly_active_100", 100)]
    weekly = outs[99].points[1]
    assert weekly.period == "2026-W48"
    assert weekly.award_id == award_id("weekly_active_100", "u1", "2026-W48")
    assert weekly.source_event_id == "w99"
    assert paid(world.apply(msg("u1", D0 + 7 * DAY - 1))) == [("message_text", 2)]  # the 101st
    assert world.points("u1") == 100 * 2 + 100 + 2


def test_weekly_threshold_again_in_a_new_week() -> None:
    world = World()
    world.apply_all([msg("u1", D0 + i * MINUTE) for i in range(100)])
    next_week = world.apply_all([msg("u1", D0 + 7 * DAY + i * MINUTE) for i in range(100)])  # 2026-W49
    assert [paid(out) for out in next_week[:99]] == [[("message_text", 2)]] * 99
    assert paid(next_week[99]) == [("message_text", 2), ("weekly_active_100", 100)]
    assert next_week[99].points[1].period == "2026-W49"
    assert next_week[99].points[1].award_id == award_id("weekly_active_100", "u1", "2026-W49")
    assert world.points("u1") == 400 + 200


def test_messages_of_other_kinds_count_toward_the_weekly_threshold() -> None:
    world = World()
    kinds = ["text", "voice", "video", "file", "image"] * 20
    outs = world.apply_all([msg("u1", NOON + i, kind) for i, kind in enumerate(kinds)])
    assert outs[99].points[-1].rule == "weekly_active_100"
    assert sum(1 for out in outs for award in out.points if award.rule == "weekly_active_100") == 1


def test_late_messages_count_in_their_own_week() -> None:
    world = World()
    world.apply_all([msg("u1", D0 + i * MINUTE) for i in range(99)])  # 2026-W48
    world.apply_all([msg("u1", D0 + 7 * DAY + i * MINUTE) for i in range(50)])  # 2026-W49
    late = world.apply(msg("u1", D0 + 3 * DAY, event_id="late"))  # Thursday of 2026-W48
    assert paid(late) == [("message_text", 2), ("weekly_active_100", 100)]
    assert late.points[1].period == "2026-W48"
    assert late.points[0].period == "2026-11-26"
    rest = world.apply_all([msg("u1", D0 + 8 * DAY + i * MINUTE) for i in range(50)])  # W49: 51st..100th
    assert [paid(out) for out in rest[:49]] == [[("message_text", 2)]] * 49
    assert paid(rest[49]) == [("message_text", 2), ("weekly_active_100", 100)]
    assert rest[49].points[1].period == "2026-W49"


def test_weekly_threshold_is_per_user() -> None:
    world = World()
    world.apply_all([msg("u1", NOON + i) for i in range(99)])
    world.apply_all([msg("u2", NOON + i) for i in range(99)])
    assert paid(world.apply(msg("u2", NOON + 100)))[-1] == ("weekly_active_100", 100)
    assert paid(world.apply(msg("u1", NOON + 100)))[-1] == ("weekly_active_100", 100)


def test_weekly_threshold_over_the_iso_year_boundary() -> None:
    world = World()
    dec_28 = D0 + 35 * DAY  # Monday 2026-12-28, ISO 2026-W53
    times = [dec_28 + (i % 7) * DAY + i * MINUTE for i in range(100)]  # Dec 28 .. Jan 3
    outs = world.apply_all([msg("u1", ts) for ts in times])
    awards = [award for out in outs for award in out.points if award.rule == "weekly_active_100"]
    assert [(award.period, award.points) for award in awards] == [("2026-W53", 100)]
    assert {out.points[0].period for out in outs} >= {"2026-12-31", "2027-01-01", "2027-01-03"}


# --- levels -------------------------------------------------------------------------------------


def test_crossing_a_thousand_points_emits_one_communicator_badge() -> None:
    world = World()
    outs = world.apply_all([msg("u1", NOON + i, "file", event_id=f"f{i}") for i in range(100)])
    assert all(out.badges == [] for out in outs[:99])
    assert world.points("u1") == 1100
    assert outs[99].badges == [
        BadgeAward(
            award_id=award_id("badge", "u1", "level", "communicator"),
            user_id="u1",
            team_id="t1",
            badge="communicator",
            kind="level",
            source_event_id="f99",
            rules_version=VERSION,
            ts=NOON + 99,
            level="communicator",
            period="lifetime",
        )
    ]
    assert outs[99].badges[0].to_record() == {
        "award_id": award_id("badge", "u1", "level", "communicator"),
        "user_id": "u1",
        "team_id": "t1",
        "badge": "communicator",
        "kind": "level",
        "source_event_id": "f99",
        "rules_version": VERSION,
        "ts": NOON + 99,
        "level": "communicator",
        "period": "lifetime",
    }
    later = world.apply_all([msg("u1", NOON + DAY + i, "file") for i in range(50)])
    assert all(out.badges == [] for out in later)


def test_level_is_reached_at_exactly_the_threshold() -> None:
    engine = Engine(RULES, Calendar(TZ))
    state = UserState()
    state.doc["points"] = 997
    assert engine.apply(msg("u1", NOON), state).badges == []  # 999
    state = UserState()
    state.doc["points"] = 998
    out = engine.apply(msg("u1", NOON), state)  # 1000
    assert [(b.badge, b.kind, b.level, b.period) for b in out.badges] == [
        ("communicator", "level", "communicator", "lifetime")
    ]
    assert state.doc["level"] == 1


def test_five_thousand_points_emit_team_star() -> None:
    engine = Engine(RULES, Calendar(TZ))
    state = UserState()
    state.doc["points"], state.doc["level"] = 4995, 1
    out = engine.apply(msg("u1", NOON, "file", event_id="f1"), state)
    assert [(b.badge, b.level) for b in out.badges] == [("team_star", "team_star")]
    assert out.badges[0].award_id == award_id("badge", "u1", "level", "team_star")
    assert engine.apply(msg("u1", NOON + 1, "file"), state).badges == []


def test_jumping_two_levels_at_once_emits_both_badges_in_order() -> None:
    world = World(rules_with({"rules.thanks_received.points": 6000}))
    [received] = world.deliver(world.apply(act("u1", "thanks_card", NOON, target="u2", event_id="big")))
    assert paid(received) == [("thanks_received", 6000)]
    assert [(b.user_id, b.badge, b.kind, b.level, b.period, b.source_event_id) for b in received.badges] == [
        ("u2", "communicator", "level", "communicator", "lifetime", "big"),
        ("u2", "team_star", "level", "team_star", "lifetime", "big"),
    ]
    assert len({b.award_id for b in received.badges}) == 2
    [again] = world.deliver(world.apply(act("u3", "thanks_card", NOON, target="u2")))
    assert again.badges == []
    assert world.states["u2"].doc["level"] == 2


def test_events_without_points_never_emit_level_badges() -> None:
    engine = Engine(RULES, Calendar(TZ))
    state = UserState()
    state.doc["points"] = 2000  # inconsistent on purpose: only a paying event checks the level
    assert engine.apply(act("u1", "feed_view", NOON), state).badges == []
    assert len(engine.apply(act("u1", "vote", NOON), state).badges) == 1


# --- time: late events, retention, pruning ------------------------------------------------------


def test_late_event_within_retention_counts_in_its_own_day() -> None:
    world = World()
    world.apply_all([like("u1", t, NOON + i) for i, t in enumerate(["u2"] * 5 + ["u3"] * 5)])  # cap reached
    world.apply(msg("u1", NOON + 10 * DAY))
    late = world.apply(like("u1", "u4", NOON + HOUR))  # 2026-11-23, ten days late
    assert (late.status, late.points, len(late.credits)) == (APPLIED, [], 1)
    late_pair = world.apply(like("u1", "u2", NOON + 2 * HOUR))
    assert late_pair.reason == "like_pair_limit"
    other_day = world.apply(like("u1", "u2", NOON + DAY))  # 2026-11-24 had no likes
    assert paid(other_day) == [("like_given", 1)]
    assert other_day.points[0].period == "2026-11-24"


def test_late_login_earns_its_own_days_login() -> None:
    world = World()
    world.apply(login("u1", NOON + 20 * DAY))
    late = world.apply(login("u1", NOON + 3 * DAY))
    assert paid(late) == [("daily_login", 5)]
    assert late.points[0].period == "2026-11-26"
    assert late.points[0].award_id == award_id("daily_login", "u1", "2026-11-26")


def test_event_older_than_the_retention_is_too_late() -> None:
    world = World()
    world.apply(msg("u1", D0 + 40 * DAY))
    state = world.states["u1"]
    snapshot = state.encode()
    out = world.apply(msg("u1", NOON, event_id="old"))
    assert (out.status, out.points, out.badges, out.credits, out.changed) == (TOO_LATE, [], [], [], False)
    assert out.reason is not None and "2026-11-23" in out.reason
    assert state.encode() == snapshot


def test_retention_boundary() -> None:
    # 2026-11-23 ends at D0 + DAY; it is retained while the watermark is before end + 35 days
    end_plus_retention = D0 + DAY + 35 * DAY
    world = World()
    world.apply(msg("u1", end_plus_retention - 1))
    assert world.apply(msg("u1", D0 + DAY - 1)).status == APPLIED
    assert world.apply(msg("u1", D0 + DAY)).status == APPLIED
    world = World()
    world.apply(msg("u1", end_plus_retention + 1))
    assert world.apply(msg("u1", D0 + DAY - 1)).status == TOO_LATE
    assert world.apply(msg("u1", D0 + DAY)).status == APPLIED  # 2026-11-24 is retained


@pytest.mark.parametrize("days_late", [1, 10, 34])
def test_late_but_retained_events_are_not_too_late(days_late: int) -> None:
    world = World()
    world.apply(msg("u1", NOON + days_late * DAY))
    assert paid(world.apply(msg("u1", NOON, "voice"))) == [("message_voice", 5)]


def test_lateness_is_judged_per_user() -> None:
    world = World()
    world.apply(msg("u1", NOON + 60 * DAY))
    assert world.apply(msg("u2", NOON)).status == APPLIED


def test_late_credit_is_too_late_for_the_receiver() -> None:
    world = World()
    world.apply(msg("u2", NOON + 60 * DAY))
    out = world.apply(act("u1", "thanks_card", NOON, target="u2"))
    [received] = world.deliver(out)
    assert (received.status, received.points, received.changed) == (TOO_LATE, [], False)


def test_late_event_does_not_move_the_watermark_back() -> None:
    world = World()
    world.apply(msg("u1", NOON + 5 * DAY))
    world.apply(msg("u1", NOON))
    assert world.states["u1"].doc["wm"] == NOON + 5 * DAY


def test_pruning_drops_old_periods_as_the_watermark_advances() -> None:
    world = World()
    for days in (0, 1, 8, 20):  # 11-23 (W48), 11-24 (W48), 12-01 (W49), 12-13 (W50)
        world.apply(msg("u1", NOON + days * DAY))
    doc = world.states["u1"].doc
    assert sorted(doc["days"]) == ["2026-11-23", "2026-11-24", "2026-12-01", "2026-12-13"]
    assert sorted(doc["weeks"]) == ["2026-W48", "2026-W49", "2026-W50"]
    assert sorted(doc["months"]) == ["2026-11", "2026-12"]
    world.apply(msg("u1", D0 + 50 * DAY))  # 2027-01-12 00:00; horizon = 2026-12-08 00:00 local
    assert sorted(doc["days"]) == ["2026-12-13", "2027-01-12"]
    assert sorted(doc["weeks"]) == ["2026-W50", "2027-W02"]
    assert sorted(doc["months"]) == ["2026-12", "2027-01"]
    assert world.apply(msg("u1", NOON + DAY)).status == TOO_LATE
    assert world.apply(msg("u1", NOON + 20 * DAY + 1)).status == APPLIED


def test_a_pruned_event_replayed_is_too_late_not_double_counted() -> None:
    world = World()
    old = msg("u1", NOON, "file")
    world.apply(old)
    world.apply(msg("u1", NOON + 50 * DAY))
    points = world.points("u1")
    assert world.apply(old).status == TOO_LATE
    assert world.points("u1") == points


# --- award ids ----------------------------------------------------------------------------------


def scenario() -> list[Any]:
    """A mixed week of events for three users, ids fixed."""
    events: list[Any] = []
    for day in range(3):
        base = NOON + day * DAY
        for user in ("u1", "u2", "u3"):
            events.append(login(user, base + 1, event_id=f"{user}-in-{day}"))
            events.append(login(user, base + 2, event_id=f"{user}-in2-{day}"))
            events.append(msg(user, base + 3, "voice", reply_to="u1", event_id=f"{user}-m-{day}"))
            events.append(msg(user, base + 4, "file", event_id=f"{user}-f-{day}"))
            for i in range(7):
                target = ("u1", "u2", "u3")[i % 3]
                events.append(like(user, target, base + 10 + i, event_id=f"{user}-l{i}-{day}"))
            events.append(act(user, "vote", base + 20, event_id=f"{user}-v-{day}"))
            events.append(act(user, "thanks_card", base + 21, target="u2", event_id=f"{user}-t-{day}"))
            events.append(act(user, "quality_marked", base + 22, target="u3", event_id=f"{user}-q-{day}"))
            events.append(act(user, "group_created", base + 23, invited=1, event_id=f"{user}-g-{day}"))
    return events


def run(events: list[Any], rules: Rules = RULES) -> tuple[list[dict[str, Any]], World]:
    world = World(rules)
    records: list[dict[str, Any]] = []
    for event in events:
        out = world.apply(event)
        records += [award.to_record() for award in [*out.points, *out.badges]]
        records += [{"credit": credit.to_record()} for credit in out.credits]
        for received in world.deliver(out):
            records += [award.to_record() for award in [*received.points, *received.badges]]
    return records, world


def test_same_events_same_order_give_identical_awards() -> None:
    first, world_a = run(scenario())
    second, world_b = run(scenario())
    assert first == second
    assert len(first) > 100
    assert {u: s.encode() for u, s in world_a.states.items()} == {
        u: s.encode() for u, s in world_b.states.items()
    }


def test_award_ids_are_distinct_across_users_and_events() -> None:
    records, _ = run(scenario())
    ids = [record["award_id"] for record in records if "award_id" in record]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[0-9a-f]{24}", award) for award in ids)


def test_same_event_id_for_two_users_gives_two_award_ids() -> None:
    a = fresh(msg("u1", NOON, event_id="shared"))
    b = fresh(msg("u2", NOON, event_id="shared"))
    assert a.points[0].award_id != b.points[0].award_id


def test_rules_version_does_not_change_award_ids() -> None:
    newer = rules_with({"version": "2027-01-01.1"})
    old_records, _ = run(scenario())
    new_records, _ = run(scenario(), newer)
    assert [r.get("award_id") for r in old_records] == [r.get("award_id") for r in new_records]
    assert {r["rules_version"] for r in new_records if "rules_version" in r} == {"2027-01-01.1"}
    assert {r["rules_version"] for r in old_records if "rules_version" in r} == {VERSION}


def test_award_id_function() -> None:
    assert award_id("a", "b") == award_id("a", "b")
    assert re.fullmatch(r"[0-9a-f]{24}", award_id("a", "b"))
    assert len({award_id("a", "b"), award_id("b", "a"), award_id("ab"), award_id("a", "b", "")}) == 4


# --- rules variants -----------------------------------------------------------------------------


def test_daily_cap_on_any_rule() -> None:
    world = World(rules_with({"rules.message_text.daily_cap": 5}))
    outs = world.apply_all([msg("u1", NOON + i) for i in range(4)])
    assert [paid(out) for out in outs] == [
        [("message_text", 2)],
        [("message_text", 2)],
        [("message_text", 1)],
        [],
    ]
    assert paid(world.apply(msg("u1", NOON + DAY))) == [("message_text", 2)]
    assert paid(world.apply(msg("u1", NOON + 5, "voice"))) == [("message_voice", 5)]


def test_daily_cap_zero_pays_nothing() -> None:
    out = fresh(act("u1", "vote", NOON), rules_with({"rules.vote.daily_cap": 0}))
    assert (out.status, out.points) == (APPLIED, [])


def test_disabled_rule_pays_nothing() -> None:
    rules = rules_with({"rules.message_text.enabled": False, "rules.reply.enabled": False})
    assert fresh(msg("u1", NOON, reply_to="u2"), rules).points == []
    assert paid(fresh(msg("u1", NOON, "video", reply_to="u2"), rules)) == [("message_video", 5)]


def test_zero_points_rule_pays_nothing() -> None:
    assert fresh(login("u1", NOON), rules_with({"rules.daily_login.points": 0})).points == []


def test_custom_pair_limit() -> None:
    world = World(rules_with({"anti_gaming.like_pair_daily_limit": 2}))
    outs = world.apply_all([like("u1", "u2", NOON + i) for i in range(3)])
    assert [out.status for out in outs] == [APPLIED, APPLIED, IGNORED]
    assert outs[2].reason == "like_pair_limit"


def test_custom_min_invited() -> None:
    rules = rules_with({"rules.group_created.min_invited": 3})
    assert fresh(act("u1", "group_created", NOON, invited=2), rules).reason == "group_without_members"
    assert paid(fresh(act("u1", "group_created", NOON, invited=3), rules)) == [("group_created", 15)]


def test_custom_retention() -> None:
    world = World(rules_with({"time.retention_days": 2}))
    world.apply(msg("u1", NOON + 3 * DAY))  # 2026-11-26; 2026-11-23 ended 2.5 days before
    assert world.apply(msg("u1", NOON)).status == TOO_LATE
    assert world.apply(msg("u1", NOON + DAY)).status == APPLIED


def test_daily_and_monthly_thresholds() -> None:
    rules = rules_with(
        {
            "thresholds": {
                "daily_3": {"counter": "messages", "period": "day", "threshold": 3, "points": 7},
                "monthly_5": {"counter": "messages", "period": "month", "threshold": 5, "points": 40},
            }
        }
    )
    world = World(rules)
    outs = world.apply_all([msg("u1", NOON + i) for i in range(3)])
    assert paid(outs[2]) == [("message_text", 2), ("daily_3", 7)]
    assert outs[2].points[1].period == "2026-11-23"
    assert outs[2].points[1].award_id == award_id("daily_3", "u1", "2026-11-23")
    assert paid(world.apply(msg("u1", NOON + 3))) == [("message_text", 2)]
    fifth = world.apply(msg("u1", NOON + DAY))
    assert paid(fifth) == [("message_text", 2), ("monthly_5", 40)]
    assert fifth.points[1].period == "2026-11"
    assert fifth.points[1].award_id == award_id("monthly_5", "u1", "2026-11")
    december = world.apply_all([msg("u1", D0 + 8 * DAY + i) for i in range(5)])  # 2026-12-01
    december_awards = [a for out in december for a in out.points if a.rule != "message_text"]
    assert [(a.rule, a.period) for a in december_awards] == [
        ("daily_3", "2026-12-01"),
        ("monthly_5", "2026-12"),
    ]
