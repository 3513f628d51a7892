"""The economy report (stream.rules.check): the most points one user can earn in a day and in a week."""

from __future__ import annotations

from stream.rules import load_rules
from stream.rules.check import economy
from tests.unit.support import parse

DEFAULT_UNCAPPED = [
    "message_text",
    "message_voice",
    "message_video",
    "message_file",
    "message_image",
    "reply",
    "vote",
    "group_created",
    "thanks_received",
    "quality_bonus",
]


def test_defaults_are_unbounded_and_list_the_uncapped_rules() -> None:
    result = economy(load_rules())
    assert result.uncapped == DEFAULT_UNCAPPED
    # like_given (cap 10 a day) 10 + daily_login 5 + weekly_active_100 100 + daily tasks 3 x 5
    # + weekly tasks 3 x 30 = 220 a day; a week: 70 + 35 + 100 + 105 + 90 = 400
    assert (result.day, result.week) == (220, 400)
    assert result.once == 150 + 500  # three lifetime achievements of 50, the team's monthly challenge
    assert [note.split(":")[0] for note in result.notes] == ["challenge group_weekly_500", "invitations"]
    lines = result.lines()
    assert lines[0].startswith("most points one user can earn: UNBOUNDED in a day and in a week")
    assert lines[0].endswith(", ".join(DEFAULT_UNCAPPED))
    assert lines[1:] == [
        "  without them: at most 220 points in a day, 400 in a week",
        "  plus at most 650 points from monthly and lifetime thresholds (achievements)",
        "  challenge group_weekly_500: 50 points a week for each group a user interacts in that reaches its "
        "threshold (not bounded by the number of groups)",
        "  invitations: an inviter earns at most 400 points a day before an operator must approve more "
        "(daily limit 20, top tier, best channel multiplier 1); no monthly budget",
    ]


CAPPED = """
counters:
  msgs_day: {fact: message, per: day}
  msgs_week: {fact: message, per: week}
  msgs_month: {fact: message, per: month}
  logins: {fact: login, streak: true}
  in_campaign: {fact: message, per: "campaign:k"}
rules:
  text: {fact: message, where: {kind: text}, points: 2, cap: {day: 20}}
  like: {fact: like, points: 1, cap: {day: 10, week: 50}}
  vote: {fact: vote, points: 8, cap: {week: 16}}
  file: {fact: message, where: {kind: file}, points: 10, cap: {month: 30}}
  voice: {fact: message, where: {kind: voice}, points: 5, cap: {day: 15}}
  disabled: {fact: message, points: 99, enabled: false}
  daily: {counter: msgs_day, threshold: 3, points: 5}
  daily2: {counter: msgs_day, threshold: 6, points: 5}
  badge_only: {counter: msgs_day, threshold: 10, badge: task}
  weekly: {counter: msgs_week, threshold: 50, points: 40}
  streak: {counter: logins, threshold: 5, per: week, points: 30, badge: task}
  monthly: {counter: msgs_month, threshold: 200, points: 100}
  camp_task: {counter: in_campaign, threshold: 3, points: 7}
campaigns:
  k: {rules: [voice, camp_task], multiplier: 2, start: "2026-12-01T00:00", end: "2026-12-08T00:00"}
  j: {rules: [daily2, voice], multiplier: 1.5, start: "2026-12-01T00:00", end: "2026-12-08T00:00"}
"""


def test_fully_capped_file_has_exact_bounds() -> None:
    result = economy(parse(CAPPED))
    assert result.uncapped == []
    # day:  text 20 + like 10 + vote 16 + file 30 + voice 15 (cap binds, doubled or not) + daily 5
    #       + daily2 floor(5 x 1.5) = 7 + weekly 40 + streak 30 = 173
    # week: text 140 + like 50 + vote 16 + file 30 + voice 105 + daily 35 + daily2 49 + weekly 40 + streak 30 = 495
    # once: monthly 100 + camp_task 7 x 2 = 114
    assert (result.day, result.week, result.once) == (173, 495, 114)
    assert result.lines() == [
        "most points one user can earn: 173 in a day, 495 in a week",
        "  plus at most 114 points from monthly and lifetime thresholds (achievements)",
        "  campaign multipliers are counted at their highest (caps still bound)",
        "  invitations: an inviter earns at most 400 points a day before an operator must approve more "
        "(daily limit 20, top tier, best channel multiplier 1); no monthly budget",
    ]


def test_a_small_capped_file_without_once_rules() -> None:
    result = economy(
        parse(
            """
            counters:
              d: {fact: feed_view, per: day}
            rules:
              like: {fact: like, points: 3, cap: {day: 9}}
              view: {counter: d, threshold: 1, points: 4}
            invites: {enabled: false}
            """
        )
    )
    assert (result.day, result.week, result.once, result.uncapped) == (13, 91, 0, [])
    assert result.lines() == ["most points one user can earn: 13 in a day, 91 in a week"]
