"""The rule language's semantics, through Engine over a MemoryStore-backed StateCache, with small rule files."""

from __future__ import annotations

from stream.engine.awards import award_id
from stream.engine.processor import APPLIED, IGNORED
from tests.unit.support import (
    D0,
    DAY,
    HOUR,
    Harness,
    act,
    book_of,
    credit,
    like,
    login,
    msg,
    paid,
)


def at(day: int, hour: float = 12) -> int:
    """Return the time ``day`` days after Monday 2026-11-23 (Shanghai), at ``hour``."""
    return D0 + day * DAY + int(hour * HOUR)


def harness(body: str) -> Harness:
    return Harness(book_of(body))


# --- counters of each kind ----------------------------------------------------------------------

PER = """
counters:
  c: {{fact: message, per: {per}, title: message}}
rules:
  t: {{counter: c, threshold: 2, points: 7}}
"""


def test_counter_per_day_pays_once_a_day() -> None:
    h = harness(PER.format(per="day"))
    outs = [h.apply(msg("u1", at(0, h_))) for h_ in (9, 10, 11)]
    assert [paid(o) for o in outs] == [[], [("t", 7)], []]
    assert outs[1].points[0].period == "2026-11-23"
    assert outs[1].points[0].award_id == award_id("t", "u1", "2026-11-23")
    outs = [h.apply(msg("u1", at(1, h_))) for h_ in (9, 10)]
    assert [paid(o) for o in outs] == [[], [("t", 7)]]
    assert outs[1].points[0].period == "2026-11-24"


def test_counter_per_day_uses_the_local_calendar_day() -> None:
    h = harness(PER.format(per="day"))
    h.apply(msg("u1", D0 - 1))  # 23:59:59.999 on Sunday in Shanghai
    assert paid(h.apply(msg("u1", D0))) == []  # Monday: a new day
    out = h.apply(msg("u1", D0 + DAY - 1))
    assert [(a.rule, a.period) for a in out.points] == [("t", "2026-11-23")]


def test_counter_per_week_pays_once_a_week() -> None:
    h = harness(PER.format(per="week"))
    assert paid(h.apply(msg("u1", at(0)))) == []
    out = h.apply(msg("u1", at(6, 23)))  # Sunday of the same ISO week
    assert [(a.rule, a.points, a.period) for a in out.points] == [("t", 7, "2026-W48")]
    assert paid(h.apply(msg("u1", at(6, 23.5)))) == []
    assert paid(h.apply(msg("u1", at(7, 0)))) == []  # Monday: week 49 starts again at 1
    out = h.apply(msg("u1", at(8)))
    assert [(a.rule, a.period) for a in out.points] == [("t", "2026-W49")]


def test_counter_per_month_pays_once_a_month() -> None:
    h = harness(PER.format(per="month"))
    h.apply(msg("u1", at(0)))
    out = h.apply(msg("u1", at(7, 23.9)))  # 2026-11-30, still November
    assert [(a.rule, a.period) for a in out.points] == [("t", "2026-11")]
    assert paid(h.apply(msg("u1", at(7, 23.95)))) == []
    assert paid(h.apply(msg("u1", at(8)))) == []  # 2026-12-01
    out = h.apply(msg("u1", at(9)))
    assert [(a.rule, a.period) for a in out.points] == [("t", "2026-12")]


def test_counter_per_lifetime_pays_once_ever() -> None:
    h = harness(PER.format(per="lifetime"))
    outs = [h.apply(msg("u1", at(day))) for day in (0, 20, 40, 60)]
    assert [paid(o) for o in outs] == [[], [("t", 7)], [], []]
    assert outs[1].points[0].period == "lifetime"
    assert h.core("u1")["#c"] == 4  # the lifetime record is the core record


def test_distinct_counter_counts_each_value_once() -> None:
    h = harness(
        """
        counters:
          groups: {fact: message, per: week, distinct: group_id, title: group spoken in}
        rules:
          t: {counter: groups, threshold: 3, points: 30, badge: task}
        """
    )
    seq = [("g1", 0), ("g1", 1), (None, 1), ("g2", 2), ("g2", 3)]
    assert [paid(h.apply(msg("u1", at(d), group=g))) for g, d in seq] == [[]] * 5
    out = h.apply(msg("u1", at(4), group="g3"))
    assert paid(out) == [("t", 30)]
    assert out.points[0].reason == "3rd group spoken in of the week: weekly task 't'"
    assert paid(h.apply(msg("u1", at(5), group="g4"))) == []
    assert h.record("u1", "w:2026-W48") is not None
    assert h.record("u1", "w:2026-W48")["~groups"] == ["g1", "g2", "g3", "g4"]  # type: ignore[index]
    assert paid(h.apply(msg("u1", at(7), group="g1"))) == []  # a new week: the values start again


# --- where filters --------------------------------------------------------------------------------


def test_where_scalar_list_and_bool() -> None:
    h = harness(
        """
        rules:
          voice: {fact: message, where: {kind: voice}, points: 5}
          media: {fact: message, where: {kind: [voice, video, image]}, points: 2}
          reply: {fact: message, where: {reply: true}, points: 3}
          not_reply: {fact: message, where: {reply: false}, points: 1}
          voice_in_g1: {fact: message, where: {kind: voice, group_id: g1}, points: 100}
        """
    )
    assert sorted(paid(h.apply(msg("u1", at(0), "voice")))) == [("media", 2), ("not_reply", 1), ("voice", 5)]
    assert sorted(paid(h.apply(msg("u1", at(0), "video", reply_to="u2")))) == [("media", 2), ("reply", 3)]
    assert paid(h.apply(msg("u1", at(0), "text"))) == [("not_reply", 1)]
    assert paid(h.apply(msg("u1", at(0), "text", reply_to="u1"))) == [("not_reply", 1)]  # oneself: no reply
    assert sorted(paid(h.apply(msg("u1", at(0), "voice", group="g1")))) == [
        ("media", 2),
        ("not_reply", 1),
        ("voice", 5),
        ("voice_in_g1", 100),
    ]
    assert sorted(paid(h.apply(msg("u1", at(0), "voice", group="g2")))) == [
        ("media", 2),
        ("not_reply", 1),
        ("voice", 5),
    ]


def test_where_filters_a_counter() -> None:
    h = harness(
        """
        counters:
          replies: {fact: message, where: {reply: true, kind: [text, voice]}, per: day, title: reply}
        rules:
          t: {counter: replies, threshold: 2, points: 9}
        """
    )
    events = [
        msg("u1", at(0), reply_to="u2"),
        msg("u1", at(0)),
        msg("u1", at(0), "image", reply_to="u2"),
        msg("u1", at(0), "voice", reply_to="u3"),
    ]
    assert [paid(h.apply(e)) for e in events] == [[], [], [], [("t", 9)]]


def test_bool_filter_is_not_an_integer_filter() -> None:
    h = harness(
        """
        rules:
          one: {fact: message, where: {group_id: "1"}, points: 1}
        """
    )
    assert paid(h.apply(msg("u1", at(0), group="1"))) == [("one", 1)]
    assert paid(h.apply(msg("u1", at(0), group="true"))) == []


# --- caps -----------------------------------------------------------------------------------------


def test_day_cap_pays_partly_when_reached() -> None:
    h = harness("rules:\n  r: {fact: message, points: 4, cap: {day: 10}, title: message}\n")
    outs = [h.apply(msg("u1", at(0))) for _ in range(4)]
    assert [paid(o) for o in outs] == [[("r", 4)], [("r", 4)], [("r", 2)], []]
    assert outs[0].points[0].reason == "message"
    assert outs[2].points[0].reason == "message (cap of 10 points a day reached)"
    assert outs[3].status == APPLIED
    assert paid(h.apply(msg("u1", at(1)))) == [("r", 4)]  # the next day pays again


def test_week_cap() -> None:
    h = harness("rules:\n  r: {fact: message, points: 4, cap: {week: 10}}\n")
    outs = [h.apply(msg("u1", at(day))) for day in (0, 2, 4, 6)]
    assert [paid(o) for o in outs] == [[("r", 4)], [("r", 4)], [("r", 2)], []]
    assert paid(h.apply(msg("u1", at(7)))) == [("r", 4)]  # week 49


def test_month_cap() -> None:
    h = harness("rules:\n  r: {fact: message, points: 4, cap: {month: 6}}\n")
    outs = [h.apply(msg("u1", at(day))) for day in (0, 3, 7)]  # all in November
    assert [paid(o) for o in outs] == [[("r", 4)], [("r", 2)], []]
    assert paid(h.apply(msg("u1", at(8)))) == [("r", 4)]  # December


def test_day_and_week_caps_together() -> None:
    h = harness("rules:\n  r: {fact: message, points: 3, cap: {day: 5, week: 8}}\n")
    day0 = [paid(h.apply(msg("u1", at(0)))) for _ in range(3)]
    assert day0 == [[("r", 3)], [("r", 2)], []]
    day1 = [paid(h.apply(msg("u1", at(1)))) for _ in range(3)]
    assert day1 == [[("r", 3)], [], []]  # the week's 8 reached
    assert paid(h.apply(msg("u1", at(7)))) == [("r", 3)]


# --- thresholds and badges ---------------------------------------------------------------------------


def test_thresholds_pay_once_per_period_when_first_reached() -> None:
    h = harness(
        """
        counters:
          c: {fact: message, per: day, title: message}
        rules:
          two: {counter: c, threshold: 2, points: 1}
          four: {counter: c, threshold: 4, points: 2, badge: task}
        """
    )
    outs = [h.apply(msg("u1", at(0))) for _ in range(6)]
    assert [paid(o) for o in outs] == [[], [("two", 1)], [], [("four", 2)], [], []]
    assert [[b.badge for b in o.badges] for o in outs] == [[], [], [], ["four"], [], []]
    outs = [h.apply(msg("u1", at(1))) for _ in range(4)]
    assert [paid(o) for o in outs] == [[], [("two", 1)], [], [("four", 2)]]


def test_badges_task_and_achievement_with_ids_and_periods() -> None:
    h = harness(
        """
        counters:
          day: {fact: message, per: day, title: message}
          ever: {fact: message, per: lifetime, title: message}
        rules:
          chatty: {counter: day, threshold: 2, badge: task, title: send 2 messages}
          veteran: {counter: ever, threshold: 5, points: 50, badge: {kind: achievement, name: old_hand}}
        """
    )
    h.apply(msg("u1", at(0)))
    out = h.apply(msg("u1", at(0), event_id="m-second"))
    assert out.points == []  # a badge-only rule pays no points
    (badge,) = out.badges
    assert (badge.badge, badge.kind, badge.period, badge.level) == ("chatty", "task", "2026-11-23", None)
    assert badge.award_id == award_id("badge", "u1", "chatty", "2026-11-23")
    assert (badge.user_id, badge.team_id, badge.source_event_id, badge.rules_version) == (
        "u1",
        "t1",
        "m-second",
        "t1",
    )
    out = h.apply(msg("u1", at(1)))
    assert out.badges == []
    out = h.apply(msg("u1", at(1)))
    assert [(b.badge, b.kind, b.period) for b in out.badges] == [("chatty", "task", "2026-11-24")]
    out = h.apply(msg("u1", at(2)))
    assert [(b.badge, b.kind, b.period) for b in out.badges] == [("old_hand", "achievement", "lifetime")]
    assert out.badges[0].award_id == award_id("badge", "u1", "old_hand", "lifetime")
    assert paid(out) == [("veteran", 50)]
    assert out.points[0].award_id == award_id("veteran", "u1", "lifetime")
    assert out.points[0].reason == "5th message: achievement 'veteran'"


def test_levels_from_lifetime_points() -> None:
    h = harness(
        """
        rules:
          r: {fact: message, points: 6}
        levels:
          - {name: a, min_points: 0}
          - {name: b, min_points: 10}
          - {name: c, min_points: 12}
        """
    )
    assert h.apply(msg("u1", at(0))).badges == []
    out = h.apply(msg("u1", at(0)))
    assert [(b.badge, b.kind, b.level, b.period) for b in out.badges] == [
        ("b", "level", "b", "lifetime"),
        ("c", "level", "c", "lifetime"),
    ]
    assert h.apply(msg("u1", at(0))).badges == []


# --- receiver: target --------------------------------------------------------------------------------

TARGETED = """
counters:
  likes_in: {fact: like, receiver: target, per: day, title: like received}
  thanks_in: {fact: thanks_card, receiver: target, per: lifetime, title: thanks card received}
rules:
  like_given: {fact: like, points: 1}
  like_received: {fact: like, receiver: target, points: 2}
  thanks_received: {fact: thanks_card, receiver: target, points: 20}
  thanks_sent: {fact: thanks_card, points: 1}
  quality: {fact: quality_marked, receiver: target, points: 10}
  popular: {counter: likes_in, threshold: 2, points: 5, badge: task}
  thanked: {counter: thanks_in, threshold: 2, badge: achievement}
"""


def test_receiver_target_through_credits() -> None:
    h = harness(TARGETED)
    out = h.apply(like("u1", "u2", at(0), event_id="l1"))
    assert paid(out) == [("like_given", 1)]
    (c,) = out.credits
    assert (c.user_id, c.kind, c.from_user_id, c.source_event_id) == ("u2", "like", "u1", "l1")
    (received,) = h.deliver(out)
    assert paid(received) == [("like_received", 2)]
    assert received.points[0].award_id == award_id("like_received", "u2", "l1")
    assert received.points[0].source_event_id == "l1"
    out = h.apply(credit("u2", "like", at(0), sender="u3"))
    assert sorted(paid(out)) == [("like_received", 2), ("popular", 5)]
    assert [(b.badge, b.kind, b.period) for b in out.badges] == [("popular", "task", "2026-11-23")]
    assert paid(h.apply(credit("u2", "thanks_card", at(0)))) == [("thanks_received", 20)]
    out = h.apply(credit("u2", "thanks_card", at(3)))
    assert paid(out) == [("thanks_received", 20)]
    assert [(b.badge, b.kind) for b in out.badges] == [("thanked", "achievement")]
    assert paid(h.apply(credit("u2", "quality_marked", at(3)))) == [("quality", 10)]


def test_thanks_card_pays_the_sender_only_by_an_actor_rule() -> None:
    h = harness(TARGETED)
    out = h.apply(act("u1", "thanks_card", at(0), target="u2"))
    assert paid(out) == [("thanks_sent", 1)]
    assert [(c.user_id, c.kind) for c in out.credits] == [("u2", "thanks_card")]
    out = h.apply(act("u1", "quality_marked", at(0), target="u2"))
    assert paid(out) == [] and [(c.user_id, c.kind) for c in out.credits] == [("u2", "quality_marked")]
    assert paid(h.deliver(out)[0]) == [("quality", 10)]
    out = h.apply(act("u1", "thanks_card", at(0), target="u1"))
    assert (out.status, out.reason, out.credits, out.points) == (IGNORED, "self_thanks_card", [], [])


def test_a_replayed_credit_counts_once() -> None:
    h = harness(TARGETED)
    out = h.apply(like("u1", "u2", at(0), event_id="l1"))
    assert paid(h.deliver(out)[0]) == [("like_received", 2)]
    assert h.deliver(out)[0].status == "duplicate"


# --- streaks -------------------------------------------------------------------------------------------

STREAK = """
counters:
  logins: {fact: login, streak: true, title: login}
rules:
  streak3: {counter: logins, threshold: 3, per: week, points: 30, badge: task, title: log in 3 days in a row}
"""


def logins(h: Harness, days: list[int], user: str = "u1") -> list[list[tuple[str, int, str]]]:
    return [[(a.rule, a.points, a.period) for a in h.apply(login(user, at(d))).points] for d in days]


def test_streak_within_a_week() -> None:
    h = harness(STREAK)
    assert logins(h, [0, 1, 2, 3]) == [[], [], [("streak3", 30, "2026-W48")], []]
    out = h.apply(login("u1", at(3, 20)))  # the same day again: nothing
    assert out.points == [] and out.status == APPLIED


def test_streak_across_a_week_boundary_pays_the_week_it_reaches() -> None:
    h = harness(STREAK)
    # Saturday, Sunday of W48, Monday of W49
    assert logins(h, [5, 6, 7]) == [[], [], [("streak3", 30, "2026-W49")]]
    out = h.apply(login("u1", at(8)))
    assert out.points == []  # W49 paid
    assert logins(h, [14]) == [[]]  # Monday of W50: the streak broke on Wed..Sun


def test_a_continuing_streak_pays_the_next_week_on_its_first_day() -> None:
    h = harness(STREAK)
    assert logins(h, [2, 3, 4, 5, 6, 7]) == [
        [],
        [],
        [("streak3", 30, "2026-W48")],
        [],
        [],
        [("streak3", 30, "2026-W49")],
    ]


def test_a_missing_day_resets_the_streak() -> None:
    h = harness(STREAK)
    assert logins(h, [0, 1, 3, 4]) == [[], [], [], []]
    out = h.apply(login("u1", at(5)))
    assert [(a.rule, a.period) for a in out.points] == [("streak3", "2026-W48")]
    assert out.points[0].reason == "3-day login streak: weekly task 'log in 3 days in a row'"
    assert [(b.badge, b.kind, b.period) for b in out.badges] == [("streak3", "task", "2026-W48")]


def test_a_late_login_joining_two_runs_pays_the_week_whose_day_newly_reaches_once() -> None:
    h = harness(STREAK)
    # Saturday (W48); Monday, Tuesday (W49): runs [Sat] and [Mon, Tue]
    assert logins(h, [5, 7, 8]) == [[], [], []]
    out = h.apply(login("u1", at(6)))  # Sunday arrives late: Sat..Tue, 4 days
    # Sunday is day 2 (W48 not reached); Monday becomes day 3 (W49 reached); Tuesday too, same week
    assert [(a.rule, a.points, a.period) for a in out.points] == [("streak3", 30, "2026-W49")]
    assert out.points[0].award_id == award_id("streak3", "u1", "2026-W49")
    assert out.points[0].reason == "3-day login streak: weekly task 'log in 3 days in a row'"
    assert [(b.badge, b.period) for b in out.badges] == [("streak3", "2026-W49")]
    assert h.apply(login("u1", at(6, 13))).points == []  # the day is already in the run
    assert logins(h, [9]) == [[]]  # W49 already paid


def test_a_late_login_joining_two_runs_can_pay_two_weeks() -> None:
    h = harness(STREAK)
    # Thursday, Friday (W48); Sunday (W48), Monday (W49)
    assert logins(h, [3, 4, 6, 7]) == [[], [], [], []]
    out = h.apply(login("u1", at(5)))  # Saturday: Thu..Mon, 5 days
    assert sorted((a.rule, a.period) for a in out.points) == [
        ("streak3", "2026-W48"),
        ("streak3", "2026-W49"),
    ]


def test_late_login_that_extends_an_old_paid_run_pays_nothing_more() -> None:
    h = harness(STREAK)
    assert logins(h, [1, 2, 3]) == [[], [], [("streak3", 30, "2026-W48")]]
    assert logins(h, [0]) == [[]]  # Monday late: W48 is paid


# --- campaigns ------------------------------------------------------------------------------------------

CAMPAIGN = """
counters:
  in_campaign: {{fact: message, per: "campaign:double", title: message}}
rules:
  voice: {{fact: message, where: {{kind: voice}}, points: 5, title: voice message}}
  likes: {{fact: like, points: 2, cap: {{day: 7}}, title: gave a like}}
  campaign_task: {{counter: in_campaign, threshold: 3, points: 10, badge: task, title: send 3 messages}}
campaigns:
  double: {{title: voice week, rules: [voice, likes, campaign_task], multiplier: {m}, start: "2026-11-24T00:00", end: "2026-11-26T00:00"}}
"""
START = D0 + DAY  # 2026-11-24 00:00 Shanghai
END = D0 + 3 * DAY


def test_campaign_window_edges_and_rounding_down() -> None:
    h = harness(CAMPAIGN.format(m=1.5))
    assert paid(h.apply(msg("u1", START - 1, "voice"))) == [("voice", 5)]
    out = h.apply(msg("u1", START, "voice"))  # start is inclusive; 7.5 rounds down
    assert paid(out) == [("voice", 7)]
    assert out.points[0].reason == "voice message (campaign 'voice week', x1.5)"
    assert paid(h.apply(msg("u1", END - 1, "voice"))) == [("voice", 7)]
    assert paid(h.apply(msg("u1", END, "voice"))) == [("voice", 5)]  # end is exclusive


def test_campaign_multiplier_within_a_cap() -> None:
    h = harness(CAMPAIGN.format(m=2))
    outs = [h.apply(like("u1", f"u{i}", START + i)) for i in range(2, 6)]
    assert [paid(o) for o in outs] == [[("likes", 4)], [("likes", 3)], [], []]  # cap of 7 a day still binds
    assert (
        outs[1].points[0].reason == "gave a like (campaign 'voice week', x2) (cap of 7 points a day reached)"
    )
    before = [paid(h.apply(like("u1", f"v{i}", START - DAY + i))) for i in range(2, 7)]
    assert before == [[("likes", 2)]] * 3 + [[("likes", 1)], []]


def test_campaign_window_counter() -> None:
    h = harness(CAMPAIGN.format(m=2))
    h.apply(msg("u1", START - 1))  # before: not counted
    h.apply(msg("u1", START))
    assert h.apply(msg("u1", START + DAY)).points == []
    out = h.apply(msg("u1", END - 1))
    assert [(a.rule, a.points, a.period) for a in out.points] == [("campaign_task", 20, "campaign:double")]
    assert out.points[0].award_id == award_id("campaign_task", "u1", "campaign:double")
    assert out.points[0].reason == (
        "3rd message of campaign 'voice week': task 'send 3 messages' (campaign 'voice week', x2)"
    )
    assert [(b.badge, b.kind, b.period) for b in out.badges] == [("campaign_task", "task", "campaign:double")]
    assert h.record("u1", "c:double") == {"#in_campaign": 3, "!campaign_task": 1}
    assert h.apply(msg("u1", END - 1)).points == []
    assert h.apply(msg("u1", END)).points == []
    assert h.record("u1", "c:double") == {"#in_campaign": 4, "!campaign_task": 1}


# --- versions -------------------------------------------------------------------------------------------

V1 = """
version: "v1"
effective_from: "2020-01-01T00:00:00"
counters:
  c: {fact: message, per: day, title: message}
rules:
  text: {fact: message, where: {kind: text}, points: 2}
  three: {counter: c, threshold: 3, points: 5, badge: task}
"""
V2 = """
version: "v2"
effective_from: "2026-11-24T00:00:00"
counters:
  c: {fact: message, per: day, title: message}
rules:
  text: {fact: message, where: {kind: text}, points: 3}
  three: {counter: c, threshold: 3, points: 8, badge: task}
"""


def test_versions_switch_at_effective_from() -> None:
    h = Harness(book_of(V1, V2))
    assert h.book.at(START - 1).version == "v1" and h.book.at(START).version == "v2"
    old = h.apply(msg("u1", START - 1))
    assert [(a.rule, a.points, a.rules_version) for a in old.points] == [("text", 2, "v1")]
    new = h.apply(msg("u1", START))
    assert [(a.rule, a.points, a.rules_version) for a in new.points] == [("text", 3, "v2")]
    h.apply(msg("u1", START + 1))
    out = h.apply(msg("u1", START + 2))
    assert [(a.rule, a.points, a.rules_version) for a in out.points] == [
        ("text", 3, "v2"),
        ("three", 8, "v2"),
    ]
    assert [(b.badge, b.rules_version) for b in out.badges] == [("three", "v2")]


def test_award_ids_are_the_same_across_versions() -> None:
    old, new = Harness(book_of(V1)), Harness(book_of(V1, V2))
    events = [msg("u1", START + i, event_id=f"m{i}") for i in range(3)]
    a = [o for e in events for o in [old.apply(e)]][-1]
    b = [o for e in events for o in [new.apply(e)]][-1]
    assert [(x.rule, x.points, x.rules_version) for x in a.points] == [("text", 2, "v1"), ("three", 5, "v1")]
    assert [(x.rule, x.points, x.rules_version) for x in b.points] == [("text", 3, "v2"), ("three", 8, "v2")]
    assert [x.award_id for x in a.points] == [x.award_id for x in b.points]
    assert [x.award_id for x in a.badges] == [x.award_id for x in b.badges]


def test_an_event_before_every_version_is_scored_by_the_earliest() -> None:
    h = Harness(
        book_of(
            V2.replace('effective_from: "2026-11-24T00:00:00"', 'effective_from: "2026-11-30T00:00:00"'),
            V1.replace("2020-01-01", "2026-11-25"),
        )
    )
    assert h.book.at(D0).version == "v1"


# --- a new daily task that no code names ----------------------------------------------------------------


def test_a_new_daily_task_works_with_no_code_change() -> None:
    h = harness(
        """
        counters:
          voice_day: {fact: message, where: {kind: voice}, per: day, title: voice message}
        rules:
          voice_task: {counter: voice_day, threshold: 2, points: 5, badge: task, title: send 2 voice messages}
        """
    )
    outs = [h.apply(msg("u1", at(0), kind)) for kind in ("voice", "text", "voice", "voice")]
    assert [paid(o) for o in outs] == [[], [], [("voice_task", 5)], []]
    assert outs[2].points[0].reason == "2nd voice message of the day: daily task 'send 2 voice messages'"
    assert [(b.badge, b.kind, b.period) for b in outs[2].badges] == [("voice_task", "task", "2026-11-23")]


# --- reasons with the bundled defaults --------------------------------------------------------------------


def test_reasons_of_the_defaults() -> None:
    h = Harness()
    first = h.apply(msg("u1", at(0)))
    assert [(a.rule, a.reason) for a in first.points] == [("message_text", "text message")]
    h.apply(msg("u1", at(0)))
    third = h.apply(msg("u1", at(0)))
    assert [(a.rule, a.reason) for a in third.points] == [
        ("message_text", "text message"),
        ("daily_messages", "3rd message of the day: daily task 'send 3 messages'"),
    ]
    out = h.apply(login("u1", at(0)))
    assert [(a.rule, a.reason) for a in out.points] == [
        ("daily_login", "1st login of the day: reward 'first login of the day'")
    ]
    likes = [h.apply(like("u1", f"u{i}", at(0))) for i in range(2, 13)]
    assert likes[1].points[-1].reason == "2nd counted like given of the day: daily task 'give 2 likes'"
    assert [(a.rule, a.reason) for a in likes[9].points] == [("like_given", "gave a like")]  # the 10th point
    assert likes[10].points == []  # the cap is reached: nothing to pay


def test_weekly_active_reason_names_the_100th_message() -> None:
    h = Harness()
    outs = [h.apply(msg("u1", at(i % 7))) for i in range(100)]
    rules = [(a.rule, a.reason) for a in outs[-1].points if a.rule == "weekly_active_100"]
    assert rules == [("weekly_active_100", "100th message of the week: reward '100 messages in a week'")]
