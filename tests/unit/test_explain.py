"""``stream explain``'s text, from example answers of the query API (tests/unit/api_examples.py)."""

from __future__ import annotations

import copy

from stream.explain import (
    describe_ignored,
    format_explain,
    format_header,
    format_ledger,
    format_progress,
    format_stopped,
    iso_week,
    rules_at,
)
from tests.unit.api_examples import LEDGER, RULES, TZ, USER

NOW_RULES = rules_at(RULES)


def test_rules_at_picks_the_version_in_effect_at_a_time_else_the_one_in_effect_now() -> None:
    assert rules_at(RULES)["rules"]["like_given"]["cap"] == {"day": 12}
    assert rules_at(RULES, 1795536000000 - 1)["rules"]["like_given"]["cap"] == {"day": 10}
    assert rules_at(RULES, 1795536000000)["rules"]["like_given"]["cap"] == {"day": 12}
    assert rules_at(RULES, 0)["rules"]["like_given"]["cap"] == {"day": 12}  # before all: now's
    assert rules_at(None) == {}


def test_iso_week_of_a_day() -> None:
    assert iso_week("2026-11-23") == "2026-W48"
    assert iso_week("2026-11-22") == "2026-W47"
    assert iso_week("2027-01-03") == "2026-W53"


def test_header_says_balance_level_next_level_week_points_and_badges() -> None:
    lines = format_header(USER, NOW_RULES)
    assert lines[0] == (
        "User u000172 (team t029): balance 778 points, level newcomer; 222 more to communicator (at 1,000)"
    )
    assert lines[1] == "Earned this week (2026-W48): 449 points"
    assert lines[2] == "Badges: weekly_groups (task), best_collaborating_group (title, 2026-W47)"


def test_header_at_the_top_level_and_without_rules() -> None:
    user = {**USER, "balance": 6200, "level": "team_star", "badges": []}
    lines = format_header(user, NOW_RULES)
    assert lines[0] == "User u000172 (team t029): balance 6,200 points, level team_star"
    assert lines[-1] == "Badges: none yet"
    assert format_header(USER, {})[0] == "User u000172 (team t029): balance 778 points, level newcomer"


def test_ledger_lists_time_in_the_zone_points_rule_period_version_reason_newest_first() -> None:
    lines = format_ledger(LEDGER, TZ)
    assert lines[0] == "Latest 4 awards, newest first by event time (times in Asia/Shanghai):"
    assert lines[1].split() == ["time", "points", "rule", "period", "version", "reason"]
    rows = lines[2:]
    assert rows[0].startswith("  2026-11-28 04:40:19")
    assert rows[0].split()[2:6] == ["+5", "daily_messages", "2026-11-28", "2026-11-23.1"]
    assert rows[0].endswith("3rd message of the day: daily task 'send 3 messages'")
    assert "[pending] invitee registered" in rows[1]  # a status other than granted is said
    assert "+15" in rows[2] and "group_created" in rows[2]
    assert rows[3].split()[2:] == [
        "badge",
        "best_collaborating_group",
        "2026-W47",
        "2026-11-23.1",
        "title",
        "badge",
    ]
    assert rows[3].startswith("  2026-11-16 00:00:00")
    # the columns line up
    assert len({row.index("2026-11-23.1") for row in rows}) == 1


def test_ledger_in_another_zone_and_empty() -> None:
    assert format_ledger(LEDGER, "UTC")[2].startswith("  2026-11-27 20:40:19")
    assert format_ledger({"awards": []}, TZ) == ["Latest awards: none (no award yet)"]


def test_progress_of_every_task_and_challenge_by_period() -> None:
    text = "\n".join(format_progress(USER, NOW_RULES))
    lines = text.splitlines()
    assert lines[0] == "Tasks and challenges ([x] done, [ ] not yet):"
    assert "  today (2026-11-28)" in lines
    assert "  this week (2026-W48)" in lines
    assert "  lifetime" in lines
    assert (
        lines.index("  today (2026-11-28)")
        < lines.index("  this week (2026-W48)")
        < lines.index("  lifetime")
    )

    def row(rule: str) -> list[str]:
        return next(line for line in lines if f" {rule} " in line).split()

    assert row("daily_login")[:4] == ["[x]", "daily_login", "1/1", "done"]
    assert row("daily_messages")[:5] == ["[", "]", "daily_messages", "1/3", "2"]
    assert "2 to go  send 3 messages (+5 points, task badge)" in text
    assert "44 to go  100 messages in a week (+100 points)" in text
    assert "89/1,000" in text and "911 to go" in text
    assert any(
        line.split()[:6] == ["[", "]", "group", "g00251", "(2026-W48)", "group_weekly_500"] for line in lines
    )
    assert "207/500" in text
    assert "unavailable now: no worker holds partition 3 now: rebalancing, retry" in text
    assert any(line.split()[:3] == ["[x]", "team", "t029"] and "10,250/10,000" in line for line in lines)


def test_progress_without_rules_still_shows_counts() -> None:
    text = "\n".join(format_progress(USER, {}))
    assert "daily_messages" in text and "1/3" in text and "(+" not in text.split("challenges")[0]
    assert format_progress({"today": {"day": "2026-11-28"}, "tasks": [], "challenges": []}, {}) == [
        "Tasks and challenges: none in these rules"
    ]


def test_ignored_reasons_in_words() -> None:
    old = rules_at(RULES, 0 + 1577808000000)
    assert describe_ignored("like_pair_limit", 3, old) == (
        "3 likes to the same person beyond the daily limit of 5 counted for nothing"
    )
    assert describe_ignored("like_pair_limit", 1, {}) == (
        "1 like to the same person beyond the daily limit counted for nothing"
    )
    assert describe_ignored("cap:like_given", 4, old) == (
        "like_given (gave a like) hit its cap of 10 points a day 4 times: those payments were cut short or dropped"
    )
    assert describe_ignored("cap:like_given", 1, old).endswith(
        "1 time: that payment was cut short or dropped"
    )
    assert (
        describe_ignored("self_like", 1, old)
        == "1 like given to oneself counted for nothing (self-likes never count)"
    )
    assert (
        describe_ignored("self_thanks_card", 2, old) == "2 thanks cards sent to oneself counted for nothing"
    )
    assert (
        describe_ignored("self_quality_marked", 1, old)
        == "1 quality mark on one's own reply counted for nothing"
    )
    assert describe_ignored("group_without_members", 1, old) == (
        "1 group created without inviting anyone (at least 1 needed) counted for nothing"
    )
    assert describe_ignored("mystery", 2, old) == "2 events counted for nothing (mystery)"


def test_caps_of_several_periods_and_a_rule_unknown_to_the_rules() -> None:
    rules = {"rules": {"vote": {"title": "voted", "cap": {"day": 16, "week": 40}}}}
    assert describe_ignored("cap:vote", 2, rules).startswith(
        "vote (voted) hit its caps of 16 points a day and 40 points a week 2 times"
    )
    assert describe_ignored("cap:gone", 1, {}).startswith("gone hit its cap 1 time")


def test_what_stopped_points_covers_the_retained_days_of_this_week_with_their_rules_version() -> None:
    lines = format_stopped(USER, RULES, TZ)
    assert lines[0] == "What stopped points this week (2026-W48; today is 2026-11-28):"
    text = "\n".join(lines)
    assert "2026-11-21" not in text  # last week
    assert "2026-11-23" not in text  # nothing stopped that day
    # 2026-11-24: the first version (pair limit 5); 2026-11-26 and today: the second (cap 12)
    assert (
        lines[1]
        == "  2026-11-24 Tue  3 likes to the same person beyond the daily limit of 5 counted for nothing"
    )
    assert (
        lines[2] == "                  1 like given to oneself counted for nothing (self-likes never count)"
    )
    assert lines[3].startswith("  2026-11-26 Thu  1 group created without inviting anyone")
    assert lines[4] == "                  2 thanks cards sent to oneself counted for nothing"
    assert lines[5].startswith(
        "                  like_given (gave a like) hit its cap of 12 points a day 4 times"
    )
    assert lines[6].startswith(
        "  2026-11-28 Sat (today)  like_given (gave a like) hit its cap of 12 points a day 2 times"
    )
    assert len(lines) == 7


def test_what_stopped_points_today_when_today_is_not_among_the_days() -> None:
    user = copy.deepcopy(USER)
    del user["days"]["2026-11-28"]
    lines = format_stopped(user, RULES, TZ)
    assert lines[-1].startswith("  2026-11-28 Sat (today)  like_given (gave a like) hit its cap")


def test_nothing_stopped_points() -> None:
    user = {**USER, "today": {"day": "2026-11-28"}, "days": {"2026-11-21": USER["days"]["2026-11-21"]}}
    assert format_stopped(user, RULES, TZ)[1:] == [
        "  nothing: every event of this week's retained days counted, and no cap cut a payment"
    ]


def test_the_whole_explanation_has_its_four_parts_in_order() -> None:
    text = format_explain(USER, LEDGER, RULES, TZ)
    parts = text.split("\n\n")
    assert [part.splitlines()[0].split()[0] for part in parts] == ["User", "Latest", "Tasks", "What"]
    # without the rules (an older worker, /rules refused): still readable
    assert "beyond the daily limit counted for nothing" in format_explain(USER, LEDGER, None, TZ)


def test_pending_invitation_rewards_are_explained_with_their_deadlines() -> None:
    from stream.explain import format_invites

    user = {
        "invites": {
            "pending": [
                {
                    "rule": "invite_inviter",
                    "points": 5,
                    "invitee": "a",
                    "deadline": 1795968000000,
                    "waiting_for": "login",
                },
                {
                    "rule": "invite_inviter",
                    "points": 10,
                    "invitee": "b",
                    "deadline": None,
                    "waiting_for": "operator",
                },
            ],
            "invitees": [
                {"invitee": "a", "fully_activated": True},
                {"invitee": "b", "fully_activated": False},
            ],
            "invitation": {
                "inviter": "zed",
                "channel": "link",
                "registered": 1795363200000,
                "status": "open",
            },
            "squad": False,
        }
    }
    lines = format_invites(user, "Asia/Shanghai")
    assert lines[0] == "Invitations:"
    assert "invited by zed (link)" in lines[1] and lines[1].endswith(": open")
    assert (
        "pending 5 points (invite_inviter, invitee a): waits for the invitee's first login until" in lines[2]
    )
    assert "waits for an operator's approval" in lines[3] and "until" not in lines[3]
    assert lines[4] == "  2 invitees, 1 fully activated"
    assert format_invites({"invites": {"pending": [], "invitees": [], "invitation": None}}, "UTC") == []
