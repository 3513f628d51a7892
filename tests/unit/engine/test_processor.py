"""Unit tests of the rule engine (stream.engine.processor): every default rule of SPEC (base points, daily
and weekly tasks, growth achievements, weekly_active_100, levels), caps, de-duplication, time and award ids.

Expected totals are recomputed by hand from SPEC's "Default rules"; a comment beside each says how.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
import yaml

from stream.core.state import MemoryStore, StateCache
from stream.engine.awards import BadgeAward, PointAward, award_id
from stream.engine.credits import Credit
from stream.engine.layout import CORE, decode_value, encode_value, new_core, prefix
from stream.engine.periods import Calendar
from stream.engine.processor import APPLIED, DUPLICATE, IGNORED, TOO_LATE, Engine, Outcome
from stream.events import Member, MemberLeft
from stream.rules import Rules, load_rules
from stream.rules.model import RulesError, parse_rules
from stream.rules.versions import RuleBook
from tests.unit.support import D0, DAY, HOUR, MINUTE, NOON, TZ, ZONE, act, like, login, msg

RULES = load_rules()
VERSION = "2026-11-23.1"
TASKS = ("daily_messages", "daily_likes", "daily_feed_view")


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


def core_key(user: str) -> bytes:
    return prefix(user.encode()) + CORE


class World:
    """One engine and one state cache for every user; ``deliver`` applies credits to their receivers."""

    def __init__(self, rules: Rules = RULES) -> None:
        self.engine = Engine(RuleBook.of(rules, ZONE), Calendar(TZ))
        self.store = MemoryStore()
        self.cache = StateCache(self.store, decode_value, encode_value)

    def apply(self, event: Any) -> Outcome:
        tx = self.cache.begin(0)
        out = self.engine.apply(event, tx, event.user_id.encode())
        tx.commit()
        return out

    def apply_all(self, events: list[Any]) -> list[Outcome]:
        return [self.apply(event) for event in events]

    def deliver(self, outcome: Outcome) -> list[Outcome]:
        return [self.apply(credit) for credit in outcome.credits]

    def core(self, user: str) -> dict[str, Any]:
        return self.cache.values.get(core_key(user)) or new_core()

    def points(self, user: str) -> int:
        return int(self.core(user)["points"])

    def set_core(self, user: str, **fields: Any) -> None:
        """Give a user a stored core record with some fields set (as an earlier worker left it)."""
        self.store.write(0, {core_key(user): encode_value(core_key(user), {**new_core(), **fields})})

    def keys(self, user: str) -> list[bytes]:
        """The names of a user's state keys of periods (``core``, ``d:2026-11-23``, ...), not its ledger."""
        p = prefix(user.encode())
        return sorted(
            k[len(p) :]
            for k, v in self.cache.values.items()
            if k.startswith(p) and v is not None and not k.startswith(p + b"l:")
        )

    def snapshot(self) -> dict[bytes, bytes]:
        return {k: encode_value(k, v) for k, v in self.cache.values.items() if v is not None}


def paid(out: Outcome) -> list[tuple[str, int]]:
    return [(award.rule, award.points) for award in out.points]


def paid_without(out: Outcome, *rules: str) -> list[tuple[str, int]]:
    """The awards of ``out`` but those of ``rules`` (by default the daily tasks)."""
    skip = rules or TASKS
    return [(award.rule, award.points) for award in out.points if award.rule not in skip]


def levels(out: Outcome) -> list[BadgeAward]:
    return [badge for badge in out.badges if badge.kind == "level"]


def fresh(event: Any, rules: Rules = RULES) -> Outcome:
    return World(rules).apply(event)


# --- messages -----------------------------------------------------------------------------------

TITLES = {
    "text": "text message",
    "voice": "voice message",
    "video": "video message",
    "file": "file posted",
    "image": "image posted",
}


@pytest.mark.parametrize(
    ("kind", "points"), [("text", 2), ("voice", 5), ("video", 5), ("file", 10), ("image", 10)]
)
def test_message_kind_points(kind: str, points: int) -> None:
    world = World()
    out = world.apply(msg("u1", NOON, kind, event_id="m1"))
    assert (out.status, out.reason) == (APPLIED, None)
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
            reason=TITLES[kind],
            status="granted",
        )
    ]
    assert world.points("u1") == points


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
        "reason": "voice message",
        "ts": NOON,
    }


@pytest.mark.parametrize(
    ("kind", "points"), [("text", 2), ("voice", 5), ("video", 5), ("file", 10), ("image", 10)]
)
def test_reply_to_another_user_adds_three(kind: str, points: int) -> None:
    world = World()
    out = world.apply(msg("u1", NOON, kind, reply_to="u2", event_id="m1"))
    assert paid(out) == [("message_" + kind, points), ("reply", 3)]
    assert out.points[1].award_id == award_id("reply", "u1", "m1")
    assert out.points[1].period == "2026-11-23"
    assert out.points[1].reason == "reply to another user"
    assert out.credits == []
    assert world.points("u1") == points + 3


def test_reply_to_oneself_earns_no_reply_points() -> None:
    assert paid(fresh(msg("u1", NOON, reply_to="u1"))) == [("message_text", 2)]


def test_message_without_reply_earns_no_reply_points() -> None:
    assert paid(fresh(msg("u1", NOON, "file"))) == [("message_file", 10)]


# --- activities ---------------------------------------------------------------------------------


def test_vote_earns_eight_and_completes_the_weekly_vote_task() -> None:
    out = fresh(act("u1", "vote", NOON, event_id="v1"))
    # SPEC: vote 8 points; weekly task "took part in 1 vote" 30 points + badge kind task, period ISO week
    assert (out.status, paid(out)) == (APPLIED, [("vote", 8), ("weekly_vote", 30)])
    assert out.points[0].award_id == award_id("vote", "u1", "v1")
    assert (out.points[1].award_id, out.points[1].period) == (
        award_id("weekly_vote", "u1", "2026-W48"),
        "2026-W48",
    )
    assert [(b.badge, b.kind, b.period, b.award_id) for b in out.badges] == [
        ("weekly_vote", "task", "2026-W48", award_id("badge", "u1", "weekly_vote", "2026-W48"))
    ]


@pytest.mark.parametrize("invited", [1, 2, 50])
def test_group_created_with_members_earns_fifteen(invited: int) -> None:
    out = fresh(act("u1", "group_created", NOON, invited=invited))
    assert (out.status, out.reason, paid(out)) == (APPLIED, None, [("group_created", 15)])


@pytest.mark.parametrize("invited", [0, None])
def test_group_created_without_members_earns_nothing(invited: int | None) -> None:
    world = World()
    out = world.apply(act("u1", "group_created", NOON, invited=invited))
    assert (out.status, out.reason, out.points, out.credits) == (IGNORED, "group_without_members", [], [])
    assert world.points("u1") == 0


def test_feed_view_completes_the_daily_feed_task_once_a_day() -> None:
    world = World()
    out = world.apply(act("u1", "feed_view", NOON, event_id="f1"))
    # SPEC: daily task "1 feed view" 5 points + badge kind task; the view itself pays nothing
    assert (out.status, out.reason, out.credits) == (APPLIED, None, [])
    assert paid(out) == [("daily_feed_view", 5)]
    assert out.points[0].award_id == award_id("daily_feed_view", "u1", "2026-11-23")
    assert out.points[0].period == "2026-11-23"
    assert [(b.badge, b.kind, b.period) for b in out.badges] == [("daily_feed_view", "task", "2026-11-23")]
    assert world.apply(act("u1", "feed_view", NOON + HOUR)).points == []
    assert paid(world.apply(act("u1", "feed_view", NOON + DAY))) == [("daily_feed_view", 5)]
    assert world.points("u1") == 10


# --- daily login --------------------------------------------------------------------------------


def test_daily_login_once_per_local_day() -> None:
    world = World()
    first = world.apply(login("u1", D0 + 8 * HOUR, event_id="in1"))
    assert paid(first) == [("daily_login", 5)]
    assert first.points[0].period == "2026-11-23"
    assert first.points[0].award_id == award_id("daily_login", "u1", "2026-11-23")
    assert first.points[0].source_event_id == "in1"
    second = world.apply(login("u1", D0 + 20 * HOUR))
    assert (second.status, second.points) == (APPLIED, [])
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
    out = fresh(like("u1", "u2", NOON, event_id="l1"))
    assert (out.status, paid(out)) == (APPLIED, [("like_given", 1)])
    assert out.points[0].award_id == award_id("like_given", "u1", "l1")
    assert out.credits == [Credit("u2", "like", "u1", "t1", "l1", NOON)]
    assert out.credits[0].event_id == "like:l1"


def test_like_given_is_capped_at_ten_points_a_day() -> None:
    world = World()
    targets = ["u2"] * 5 + ["u3"] * 5
    outs = [world.apply(like("u1", target, NOON + i * MINUTE)) for i, target in enumerate(targets)]
    # the 2nd counted like of the day also completes the daily task "2 likes given" (5 points)
    assert [paid_without(out) for out in outs] == [[("like_given", 1)]] * 10
    assert [i for i, out in enumerate(outs) if ("daily_likes", 5) in paid(out)] == [1]
    eleventh = world.apply(like("u1", "u4", NOON + HOUR, event_id="l11"))
    assert (eleventh.status, eleventh.reason, eleventh.points) == (APPLIED, None, [])
    # the like still counts: its target is credited
    assert eleventh.credits == [Credit("u4", "like", "u1", "t1", "l11", NOON + HOUR)]
    assert world.apply(like("u1", "u5", NOON + 2 * HOUR)).points == []
    assert world.points("u1") == 10 + 5  # like_given capped at 10 + daily_likes 5
    next_day = world.apply(like("u1", "u4", NOON + DAY))
    assert paid(next_day) == [("like_given", 1)]
    assert next_day.points[0].period == "2026-11-24"
    assert world.points("u1") == 16


def test_self_like_is_ignored() -> None:
    world = World()
    out = world.apply(like("u1", "u1", NOON))
    assert (out.status, out.reason, out.points, out.credits) == (IGNORED, "self_like", [], [])
    assert world.points("u1") == 0


def test_self_likes_use_up_neither_cap_nor_pair_limit() -> None:
    world = World()
    for i in range(20):
        assert world.apply(like("u1", "u1", NOON + i)).reason == "self_like"
    outs = world.apply_all([like("u1", t, NOON + HOUR + i) for i, t in enumerate(["u2"] * 5 + ["u3"] * 5)])
    assert all(paid_without(out) == [("like_given", 1)] for out in outs)
    # SPEC: likes that count for nothing count toward no task: the daily task waits for the 2nd counted like
    assert [i for i, out in enumerate(outs) if ("daily_likes", 5) in paid(out)] == [1]


def test_sixth_like_to_the_same_target_in_a_day_is_ignored() -> None:
    world = World()
    outs = world.apply_all([like("u1", "u2", NOON + i * MINUTE) for i in range(5)])
    assert all(out.status == APPLIED and len(out.credits) == 1 for out in outs)
    sixth = world.apply(like("u1", "u2", NOON + HOUR))
    assert (sixth.status, sixth.reason, sixth.points, sixth.credits) == (IGNORED, "like_pair_limit", [], [])
    assert world.apply(like("u1", "u2", NOON + 2 * HOUR)).reason == "like_pair_limit"
    other = world.apply(like("u1", "u3", NOON + 3 * HOUR, event_id="l-u3"))
    assert (other.status, paid(other)) == (APPLIED, [("like_given", 1)])
    assert other.credits == [Credit("u3", "like", "u1", "t1", "l-u3", NOON + 3 * HOUR)]
    assert world.points("u1") == 6 + 5  # 6 counted likes + daily_likes 5


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
    assert world.points("u1") == 10 + 5  # like_given capped at 10 + daily_likes 5 (paid at the 2nd like)


def test_like_received_credit_counts_but_earns_nothing() -> None:
    world = World()
    given = world.apply(like("u1", "u2", NOON, event_id="l1"))
    [received] = world.deliver(given)
    assert (received.status, received.points, received.badges) == (APPLIED, [], [])
    assert world.points("u2") == 0
    assert world.core("u2")["#likes_received_lifetime"] == 1


# --- thanks and quality marks -------------------------------------------------------------------


def test_thanks_card_credits_the_target_and_the_sender_gets_nothing() -> None:
    world = World()
    out = world.apply(act("u1", "thanks_card", NOON, target="u2", event_id="th1"))
    assert (out.status, out.points, out.badges) == (APPLIED, [], [])
    assert out.credits == [Credit("u2", "thanks_card", "u1", "t1", "th1", NOON)]
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
            reason="received a thanks card",
        )
    ]
    assert world.points("u2") == 20


def test_quality_mark_credits_a_quality_bonus() -> None:
    world = World()
    out = world.apply(act("u9", "quality_marked", NOON, target="u2", event_id="q1"))
    assert (out.status, out.points) == (APPLIED, [])
    assert out.credits == [Credit("u2", "quality_marked", "u9", "t1", "q1", NOON)]
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
    assert world.apply(Member("u2", "tR", D0 - 30 * DAY)).status == APPLIED
    assert world.core("u2")["roster"] == ["tR", D0 - 30 * DAY]
    [received] = world.deliver(world.apply(act("u1", "thanks_card", NOON, target="u2")))
    assert received.points[0].team_id == "tR"


def test_credit_award_falls_back_to_the_senders_team() -> None:
    world = World()
    [received] = world.deliver(world.apply(act("u1", "quality_marked", NOON, target="u2", team="tS")))
    assert received.points[0].team_id == "tS"


def test_credit_record_round_trip() -> None:
    credit = Credit("u2", "thanks_card", "u1", "t1", "th1", NOON)
    assert credit.to_record() == {
        "user_id": "u2",
        "kind": "thanks_card",
        "from_user_id": "u1",
        "team_id": "t1",
        "source_event_id": "th1",
        "ts": NOON,
    }
    assert Credit.from_record(credit.to_record()) == credit


def test_credit_of_a_format_1_worker_names_the_fact() -> None:
    record = Credit("u2", "thanks_card", "u1", "t1", "th1", NOON).to_record()
    for legacy, fact in (
        ("like_received", "like"),
        ("thanks_received", "thanks_card"),
        ("quality_bonus", "quality_marked"),
    ):
        assert Credit.from_record({**record, "kind": legacy}).kind == fact


def test_credit_from_a_malformed_record() -> None:
    record = Credit("u2", "thanks_card", "u1", "t1", "th1", NOON).to_record()
    with pytest.raises(ValueError, match="unknown credit kind"):
        Credit.from_record({**record, "kind": "bribe"})
    with pytest.raises(KeyError):
        Credit.from_record({k: v for k, v in record.items() if k != "source_event_id"})


# --- roster -------------------------------------------------------------------------------------


def test_member_and_member_left_change_state_without_awards() -> None:
    world = World()
    out = world.apply(Member("u1", "tR", D0))
    assert (out.status, out.points, out.badges, out.credits) == (APPLIED, [], [], [])
    assert (world.core("u1")["roster"], world.core("u1")["left"]) == (["tR", D0], False)
    assert set(world.cache.take_changes()) == {core_key("u1")}
    out = world.apply(MemberLeft("u1"))
    assert (out.status, out.points) == (APPLIED, [])
    assert world.core("u1")["left"] is True
    assert set(world.cache.take_changes()) == {core_key("u1")}


# --- the team an award names --------------------------------------------------------------------


def test_award_names_the_team_of_its_own_event_after_a_team_change() -> None:
    world = World()
    assert world.apply(msg("u1", NOON, team="t1")).points[0].team_id == "t1"
    moved = world.apply(msg("u1", NOON + HOUR, team="t2"))
    assert world.core("u1")["team"] == "t2"
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
    world = World()
    first = world.apply(event)
    assert first.status in (APPLIED, IGNORED)
    assert world.cache.take_changes() != {}
    snapshot = world.snapshot()
    again = world.apply(event)
    assert again == Outcome(status=DUPLICATE, reason=None, points=[], badges=[], credits=[])
    assert world.cache.take_changes() == {}
    assert world.snapshot() == snapshot


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
    assert (again.status, again.points, again.badges) == (DUPLICATE, [], [])
    assert world.points("u2") == 20


def test_like_received_credit_twice_counts_once() -> None:
    world = World()
    out = world.apply(like("u1", "u2", NOON))
    world.deliver(out)
    world.cache.take_changes()
    [again] = world.deliver(out)
    assert again.status == DUPLICATE
    assert world.cache.take_changes() == {}
    assert world.core("u2")["#likes_received_lifetime"] == 1


def test_credits_of_different_kinds_from_one_source_id_are_distinct() -> None:
    world = World()
    a = world.apply(Credit("u2", "thanks_card", "u1", "t1", "x", NOON))
    b = world.apply(Credit("u2", "quality_marked", "u1", "t1", "x", NOON))
    assert (paid(a), paid(b)) == ([("thanks_received", 20)], [("quality_bonus", 10)])


# --- weekly_active_100 ---------------------------------------------------------------------------


def test_hundredth_message_of_the_week_earns_a_hundred_once() -> None:
    world = World()
    # spread over the whole ISO week 2026-W48: Monday 00:00 to Sunday 23:59 local
    times = [D0 + i * (7 * DAY - 1) // 99 for i in range(100)]
    assert times[-1] == D0 + 7 * DAY - 1
    outs = world.apply_all([msg("u1", ts, event_id=f"w{i}") for i, ts in enumerate(times)])
    assert all(paid_without(out) == [("message_text", 2)] for out in outs[:99])
    assert paid_without(outs[99]) == [("message_text", 2), ("weekly_active_100", 100)]
    weekly = outs[99].points[-1]
    assert weekly.period == "2026-W48"
    assert weekly.award_id == award_id("weekly_active_100", "u1", "2026-W48")
    assert weekly.source_event_id == "w99"
    assert weekly.reason == "100th message of the week: reward '100 messages in a week'"
    assert paid_without(world.apply(msg("u1", D0 + 7 * DAY - 1))) == [("message_text", 2)]  # the 101st
    tasks = [a for out in outs for a in out.points if a.rule == "daily_messages"]
    assert sorted(a.period for a in tasks) == [
        f"2026-11-{d}" for d in range(23, 30)
    ]  # >= 3 messages each day
    # 101 text messages x 2 + weekly_active_100 100 + daily task "3 messages" 5 on each of the 7 days
    assert world.points("u1") == 101 * 2 + 100 + 7 * 5


def test_weekly_threshold_again_in_a_new_week() -> None:
    world = World()
    world.apply_all([msg("u1", D0 + i * MINUTE) for i in range(100)])
    next_week = world.apply_all([msg("u1", D0 + 7 * DAY + i * MINUTE) for i in range(100)])  # 2026-W49
    assert [paid_without(out) for out in next_week[:99]] == [[("message_text", 2)]] * 99
    assert paid_without(next_week[99]) == [("message_text", 2), ("weekly_active_100", 100)]
    assert next_week[99].points[1].period == "2026-W49"
    assert next_week[99].points[1].award_id == award_id("weekly_active_100", "u1", "2026-W49")
    # 200 text messages x 2 + two weekly_active_100 + the daily task on two days (each Monday)
    assert world.points("u1") == 400 + 200 + 2 * 5


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
    assert [paid_without(out) for out in rest[:49]] == [[("message_text", 2)]] * 49
    assert paid_without(rest[49]) == [("message_text", 2), ("weekly_active_100", 100)]
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


# --- daily tasks ----------------------------------------------------------------------------------


def test_third_message_of_the_day_completes_the_daily_message_task() -> None:
    world = World()
    outs = world.apply_all([msg("u1", NOON + i, event_id=f"dm{i}") for i in range(5)])
    assert [paid(out) for out in outs] == [
        [("message_text", 2)],
        [("message_text", 2)],
        [("message_text", 2), ("daily_messages", 5)],
        [("message_text", 2)],
        [("message_text", 2)],
    ]
    task = outs[2].points[1]
    assert (task.award_id, task.period, task.source_event_id) == (
        award_id("daily_messages", "u1", "2026-11-23"),
        "2026-11-23",
        "dm2",
    )
    assert task.reason == "3rd message of the day: daily task 'send 3 messages'"
    assert outs[2].badges == [
        BadgeAward(
            award_id=award_id("badge", "u1", "daily_messages", "2026-11-23"),
            user_id="u1",
            team_id="t1",
            badge="daily_messages",
            kind="task",
            source_event_id="dm2",
            rules_version=VERSION,
            ts=NOON + 2,
            period="2026-11-23",
        )
    ]
    assert [out.badges for out in outs if out is not outs[2]] == [[]] * 4
    next_day = world.apply_all([msg("u1", NOON + DAY + i) for i in range(3)])
    assert next_day[2].points[1].award_id == award_id("daily_messages", "u1", "2026-11-24")
    assert world.points("u1") == 8 * 2 + 2 * 5  # 8 text messages + the task on two days


def test_second_counted_like_completes_the_daily_like_task() -> None:
    world = World()
    assert world.apply(like("u1", "u1", NOON)).reason == "self_like"  # counts for nothing
    first = world.apply(like("u1", "u2", NOON + 1))
    second = world.apply(like("u1", "u3", NOON + 2, event_id="l2"))
    assert (paid(first), paid(second)) == ([("like_given", 1)], [("like_given", 1), ("daily_likes", 5)])
    assert second.points[1].award_id == award_id("daily_likes", "u1", "2026-11-23")
    assert [(b.badge, b.kind, b.period) for b in second.badges] == [("daily_likes", "task", "2026-11-23")]
    assert paid(world.apply(like("u1", "u4", NOON + 3))) == [("like_given", 1)]


def test_likes_over_the_pair_limit_do_not_count_toward_the_daily_like_task() -> None:
    world = World(rules_with({"anti_gaming.like_pair_daily_limit": 1}))
    assert paid(world.apply(like("u1", "u2", NOON))) == [("like_given", 1)]
    assert world.apply(like("u1", "u2", NOON + 1)).reason == "like_pair_limit"
    assert paid(world.apply(like("u1", "u3", NOON + 2))) == [("like_given", 1), ("daily_likes", 5)]


# --- weekly tasks ---------------------------------------------------------------------------------


def test_speaking_in_three_groups_completes_the_weekly_group_task() -> None:
    world = World()
    outs = world.apply_all(
        [
            msg("u1", NOON, group="g1"),
            msg("u1", NOON + DAY, group="g1"),  # the same group again
            msg("u1", NOON + 2 * DAY),  # no group
            msg("u1", NOON + 3 * DAY, group="g2"),
            msg("u1", NOON + 4 * DAY, group="g3", event_id="third"),
            msg("u1", NOON + 5 * DAY, group="g4"),
        ]
    )
    weekly = [(i, a) for i, out in enumerate(outs) for a in out.points if a.rule == "weekly_groups"]
    assert [(i, a.points, a.period, a.source_event_id) for i, a in weekly] == [(4, 30, "2026-W48", "third")]
    assert weekly[0][1].award_id == award_id("weekly_groups", "u1", "2026-W48")
    assert [(b.badge, b.kind, b.period) for b in outs[4].badges] == [("weekly_groups", "task", "2026-W48")]
    # a new week counts its groups again
    next_week = world.apply_all(
        [msg("u1", NOON + 7 * DAY + i, group=g) for i, g in enumerate(["g1", "g2", "g3"])]
    )
    assert ("weekly_groups", 30) in paid(next_week[2])
    assert next_week[2].points[-1].period == "2026-W49"


def test_one_vote_a_week_completes_the_weekly_vote_task_once() -> None:
    world = World()
    outs = world.apply_all([act("u1", "vote", NOON + i * DAY) for i in range(7)])  # Monday .. Sunday
    assert paid(outs[0]) == [("vote", 8), ("weekly_vote", 30)]
    assert all(paid(out) == [("vote", 8)] for out in outs[1:])
    following = world.apply(act("u1", "vote", NOON + 7 * DAY))
    assert paid(following) == [("vote", 8), ("weekly_vote", 30)]
    assert following.points[1].period == "2026-W49"
    assert world.points("u1") == 8 * 8 + 2 * 30


def test_five_consecutive_login_days_complete_the_weekly_streak_task() -> None:
    world = World()
    outs = [world.apply(login("u1", NOON + i * DAY, event_id=f"s{i}")) for i in range(7)]  # Mon .. Sun
    streak = [(i, a) for i, out in enumerate(outs) for a in out.points if a.rule == "weekly_login_streak"]
    assert [(i, a.points, a.period, a.source_event_id) for i, a in streak] == [(4, 30, "2026-W48", "s4")]
    assert streak[0][1].award_id == award_id("weekly_login_streak", "u1", "2026-W48")
    assert streak[0][1].reason == "5-day login streak: weekly task 'log in 5 days in a row'"
    assert [(b.badge, b.kind, b.period) for b in outs[4].badges] == [
        ("weekly_login_streak", "task", "2026-W48")
    ]
    # 7 daily logins x 5 + the weekly task once
    assert world.points("u1") == 7 * 5 + 30
    # the streak runs on across the week boundary: Monday of W49 is its 8th day, reached in W49
    monday = world.apply(login("u1", NOON + 7 * DAY))
    assert paid(monday) == [("daily_login", 5), ("weekly_login_streak", 30)]
    assert monday.points[1].period == "2026-W49"


def test_a_streak_reached_across_the_week_boundary_pays_the_week_it_is_reached_in() -> None:
    world = World()
    # Thursday 2026-11-26 .. Monday 2026-11-30: the 5th consecutive day is in 2026-W49
    outs = [world.apply(login("u1", NOON + (3 + i) * DAY)) for i in range(5)]
    streak = [a for out in outs for a in out.points if a.rule == "weekly_login_streak"]
    assert [(a.period, a.ts) for a in streak] == [("2026-W49", NOON + 7 * DAY)]


def test_a_late_login_that_closes_a_gap_completes_the_streak() -> None:
    world = World()
    for i in (0, 1, 3, 4):  # Monday, Tuesday, Thursday, Friday; Wednesday missing
        world.apply(login("u1", NOON + i * DAY))
    late = world.apply(login("u1", NOON + 2 * DAY, event_id="wed"))  # Wednesday, late
    # daily_login of Wednesday; the streak Mon..Fri now reaches 5 on Friday, in 2026-W48
    assert paid(late) == [("daily_login", 5), ("weekly_login_streak", 30)]
    assert late.points[1].period == "2026-W48"
    assert world.points("u1") == 5 * 5 + 30


def test_a_broken_streak_pays_nothing() -> None:
    world = World()
    outs = [world.apply(login("u1", NOON + i * DAY)) for i in (0, 1, 2, 3, 5, 6, 7, 8)]
    assert not any(a.rule == "weekly_login_streak" for out in outs for a in out.points)


# --- growth achievements (lifetime) ---------------------------------------------------------------


def test_fifth_group_created_earns_the_achievement_once() -> None:
    world = World()
    outs = world.apply_all(
        [act("u1", "group_created", NOON + i * DAY, invited=1, group=f"g{i}") for i in range(6)]
    )
    assert world.apply(act("u1", "group_created", NOON, invited=0)).reason == "group_without_members"
    assert [paid(out) for out in outs] == [[("group_created", 15)]] * 4 + [
        [("group_created", 15), ("groups_created_5", 50)],
        [("group_created", 15)],
    ]
    award = outs[4].points[1]
    assert (award.period, award.award_id) == ("lifetime", award_id("groups_created_5", "u1", "lifetime"))
    assert [(b.badge, b.kind, b.period, b.award_id) for b in outs[4].badges] == [
        (
            "groups_created_5",
            "achievement",
            "lifetime",
            award_id("badge", "u1", "groups_created_5", "lifetime"),
        )
    ]
    assert world.points("u1") == 6 * 15 + 50


def test_thousandth_message_earns_the_messages_achievement() -> None:
    world = World()
    # 1,000 text messages, 100 a day over 10 days (2026-11-23 .. 2026-12-02)
    outs = world.apply_all([msg("u1", NOON + (i // 100) * DAY + i % 100) for i in range(1000)])
    achievements = [(i, a) for i, out in enumerate(outs) for a in out.points if a.rule == "messages_1000"]
    assert [(i, a.points, a.period) for i, a in achievements] == [(999, 50, "lifetime")]
    assert ("messages_1000", "achievement") in [(b.badge, b.kind) for b in outs[999].badges]
    # 1000 x 2 + daily task on 10 days x 5 + weekly_active_100 in W48 (days 0-6: 700) and W49 (days 7-9: 300)
    # + messages_1000 50
    assert world.points("u1") == 2000 + 50 + 2 * 100 + 50
    assert paid_without(world.apply(msg("u1", NOON + 9 * DAY + 500))) == [("message_text", 2)]


def test_hundredth_like_received_earns_the_likes_achievement() -> None:
    world = World()
    received: list[Outcome] = []
    for i in range(100):  # 100 likers, one like each: no pair limit
        received += world.deliver(world.apply(like(f"s{i}", "u2", NOON + i)))
    assert [paid(out) for out in received[:99]] == [[]] * 99
    assert paid(received[99]) == [("likes_received_100", 50)]
    assert received[99].points[0].award_id == award_id("likes_received_100", "u2", "lifetime")
    assert [(b.badge, b.kind) for b in received[99].badges] == [("likes_received_100", "achievement")]
    assert world.points("u2") == 50


def test_likes_over_the_pair_limit_are_not_received_either() -> None:
    world = World()
    for i in range(8):
        world.deliver(world.apply(like("u1", "u2", NOON + i)))
    assert world.core("u2")["#likes_received_lifetime"] == 5


# --- levels -------------------------------------------------------------------------------------


def test_crossing_a_thousand_points_emits_one_communicator_badge() -> None:
    world = World()
    outs = world.apply_all([msg("u1", NOON + i, "file", event_id=f"f{i}") for i in range(100)])
    # after k files: 10 k + daily task 5 (from the 3rd) -> 995 after the 99th, 1005 + weekly_active_100 100
    # = 1105 after the 100th: the level is crossed by the 100th message
    assert all(levels(out) == [] for out in outs[:99])
    assert world.points("u1") == 1105
    assert levels(outs[99]) == [
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
    assert levels(outs[99])[0].to_record() == {
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
    assert all(levels(out) == [] for out in later)


def test_level_is_reached_at_exactly_the_threshold() -> None:
    world = World()
    world.set_core("u1", points=997)
    assert world.apply(msg("u1", NOON)).badges == []  # 999
    world = World()
    world.set_core("u1", points=998)
    out = world.apply(msg("u1", NOON))  # 1000
    assert [(b.badge, b.kind, b.level, b.period) for b in out.badges] == [
        ("communicator", "level", "communicator", "lifetime")
    ]
    assert world.core("u1")["level"] == 1


def test_five_thousand_points_emit_team_star() -> None:
    world = World()
    world.set_core("u1", points=4995, level=1)
    out = world.apply(msg("u1", NOON, "file", event_id="f1"))
    assert [(b.badge, b.level) for b in out.badges] == [("team_star", "team_star")]
    assert out.badges[0].award_id == award_id("badge", "u1", "level", "team_star")
    assert world.apply(msg("u1", NOON + 1, "file")).badges == []


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
    assert world.core("u2")["level"] == 2


def test_events_without_points_never_emit_level_badges() -> None:
    world = World()
    world.set_core("u1", points=2000)  # inconsistent on purpose: only a paying event checks the level
    assert (
        world.apply(Credit("u1", "like", "u9", "t1", "x", NOON)).badges == []
    )  # a like received pays nothing
    assert world.apply(login("u1", NOON)).badges != []  # daily_login pays 5
    assert world.core("u1")["level"] == 1
    # vote 8 + weekly_vote 30: the weekly task's badge only, no second level
    assert [b.kind for b in world.apply(act("u1", "vote", NOON)).badges] == ["task"]


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
    world.cache.take_changes()
    snapshot = world.snapshot()
    out = world.apply(msg("u1", NOON, event_id="old"))
    assert (out.status, out.points, out.badges, out.credits) == (TOO_LATE, [], [], [])
    assert out.reason is not None and "2026-11-23" in out.reason
    assert world.cache.take_changes() == {}
    assert world.snapshot() == snapshot


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
    world.cache.take_changes()
    [received] = world.deliver(out)
    assert (received.status, received.points) == (TOO_LATE, [])
    assert world.cache.take_changes() == {}


def test_late_event_does_not_move_the_watermark_back() -> None:
    world = World()
    world.apply(msg("u1", NOON + 5 * DAY))
    world.apply(msg("u1", NOON))
    assert world.core("u1")["wm"] == NOON + 5 * DAY


def test_pruning_deletes_the_keys_of_old_periods_as_the_watermark_advances() -> None:
    world = World()
    for days in (0, 1, 8, 20):  # 11-23 (W48), 11-24 (W48), 12-01 (W49), 12-13 (W50)
        world.apply(msg("u1", NOON + days * DAY))
    world.cache.take_changes()
    days = [b"2026-11-23", b"2026-11-24", b"2026-12-01", b"2026-12-13"]
    weeks = [b"w:2026-W48", b"w:2026-W49", b"w:2026-W50"]
    # the early activity log (b"e": the first messages) is kept for life, like the core
    assert world.keys("u1") == sorted([b"core", b"e", *(b"d:" + d for d in days), *weeks])
    assert sorted(world.core("u1")["weeks"]) == ["2026-W48", "2026-W49", "2026-W50"]
    world.apply(msg("u1", D0 + 50 * DAY))  # 2027-01-12 00:00; horizon = 2026-12-08 00:00 local
    kept = [b"2026-12-13", b"2027-01-12"]
    assert world.keys("u1") == sorted(
        [b"core", b"e", *(b"d:" + d for d in kept), b"w:2026-W50", b"w:2027-W02"]
    )
    assert sorted(world.core("u1")["weeks"]) == ["2026-W50", "2027-W02"]
    tombstones = {key for key, (_, raw) in world.cache.take_changes().items() if raw is None}
    p = prefix(b"u1")
    assert tombstones == {p + b"d:" + d for d in days[:3]} | {
        p + b"w:2026-W48",
        p + b"w:2026-W49",
    }
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


def write_sizes(world: World) -> dict[bytes, int]:
    """The bytes of each changed key (name within its user's keys) since the last take."""
    return {
        key.split(b"\x00", 1)[1][:2]: len(raw or b"") for key, (_, raw) in world.cache.take_changes().items()
    }


def test_a_very_active_users_write_per_event_does_not_grow_with_the_days_retained() -> None:
    def one_more_after(days: int) -> dict[bytes, int]:
        world = World()
        for d in range(days):
            for i in range(40):  # 40 messages and 40 likes a day, a login and a feed view
                world.apply(msg("u1", NOON + d * DAY + i, group=f"g{i % 4}", reply_to="u2"))
                world.apply(like("u1", f"v{i % 8}", NOON + d * DAY + 100 + i))
            world.apply(login("u1", NOON + d * DAY + 200))
            world.apply(act("u1", "feed_view", NOON + d * DAY + 201))
        world.cache.take_changes()
        world.apply(msg("u1", NOON + (days - 1) * DAY + 1000, group="g1", reply_to="u2"))
        sizes = write_sizes(world)
        # the ledger writes one chunk of at most CHUNK awards, whatever the days retained

        return sizes

    after_1, after_30, after_60 = one_more_after(1), one_more_after(30), one_more_after(60)
    # one message writes only the keys of its own periods: the core, its day's record (with its seen ids),
    # its week
    assert set(after_1) == set(after_30) == set(after_60) == {b"co", b"d:", b"w:"}
    # the day's keys hold one day's events, whatever the days retained
    assert after_1[b"d:"] == after_30[b"d:"] == after_60[b"d:"]
    # the core only lists the retained weeks (at most 6 in 35 days): bounded by the retention, not the days
    total_1, total_30, total_60 = (sum(sizes.values()) for sizes in (after_1, after_30, after_60))
    assert total_30 <= total_1 * 5 // 4, (after_1, after_30)
    assert total_60 <= total_30 + 64, (after_30, after_60)


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
    assert world_a.snapshot() == world_b.snapshot()
    # the scenario completes tasks, so task badges and their points are part of what is compared
    assert {r["rule"] for r in first if "rule" in r} >= {"daily_likes", "weekly_vote", "thanks_received"}
    assert {r["kind"] for r in first if "badge" in r} == {"task"}


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
    world = World(rules_with({"rules.message_text.cap": {"day": 5}}))
    outs = world.apply_all([msg("u1", NOON + i) for i in range(4)])
    assert [paid(out) for out in outs] == [
        [("message_text", 2)],
        [("message_text", 2)],
        [("message_text", 1), ("daily_messages", 5)],  # the cap bounds the rule, not the daily task
        [],
    ]
    assert outs[2].points[0].reason == "text message (cap of 5 points a day reached)"
    assert paid(world.apply(msg("u1", NOON + DAY))) == [("message_text", 2)]
    assert paid(world.apply(msg("u1", NOON + 5, "voice"))) == [("message_voice", 5)]


def test_daily_cap_zero_pays_nothing() -> None:
    out = fresh(act("u1", "vote", NOON), rules_with({"rules.vote.cap": {"day": 0}}))
    assert (out.status, paid_without(out, "weekly_vote")) == (APPLIED, [])


def test_disabled_rule_pays_nothing() -> None:
    rules = rules_with({"rules.message_text.enabled": False, "rules.reply.enabled": False})
    assert fresh(msg("u1", NOON, reply_to="u2"), rules).points == []
    assert paid(fresh(msg("u1", NOON, "video", reply_to="u2"), rules)) == [("message_video", 5)]


def test_disabled_threshold_rule_pays_nothing() -> None:
    assert fresh(login("u1", NOON), rules_with({"rules.daily_login.enabled": False})).points == []


def test_a_rule_paying_nothing_is_rejected() -> None:
    with pytest.raises(RulesError, match="points"):
        rules_with({"rules.daily_login.points": 0})


def test_custom_pair_limit() -> None:
    world = World(rules_with({"anti_gaming.like_pair_daily_limit": 2}))
    outs = world.apply_all([like("u1", "u2", NOON + i) for i in range(3)])
    assert [out.status for out in outs] == [APPLIED, APPLIED, IGNORED]
    assert outs[2].reason == "like_pair_limit"


def test_custom_min_invited() -> None:
    rules = rules_with({"anti_gaming.group_min_invited": 3})
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
            "counters.messages_month": {"fact": "message", "per": "month", "title": "message"},
            "rules.daily_3": {"counter": "messages_day", "threshold": 3, "points": 7},
            "rules.monthly_5": {"counter": "messages_month", "threshold": 5, "points": 40},
        }
    )
    world = World(rules)
    outs = world.apply_all([msg("u1", NOON + i) for i in range(3)])
    assert paid_without(outs[2]) == [("message_text", 2), ("daily_3", 7)]
    daily = next(a for a in outs[2].points if a.rule == "daily_3")
    assert daily.period == "2026-11-23"
    assert daily.award_id == award_id("daily_3", "u1", "2026-11-23")
    assert paid(world.apply(msg("u1", NOON + 3))) == [("message_text", 2)]
    fifth = world.apply(msg("u1", NOON + DAY))
    assert paid(fifth) == [("message_text", 2), ("monthly_5", 40)]
    assert fifth.points[1].period == "2026-11"
    assert fifth.points[1].award_id == award_id("monthly_5", "u1", "2026-11")
    december = world.apply_all([msg("u1", D0 + 8 * DAY + i) for i in range(5)])  # 2026-12-01
    december_awards = [a for out in december for a in out.points if a.rule not in ("message_text", *TASKS)]
    assert [(a.rule, a.period) for a in december_awards] == [
        ("daily_3", "2026-12-01"),
        ("monthly_5", "2026-12"),
    ]
