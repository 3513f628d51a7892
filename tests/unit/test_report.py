"""``stream report economy|invites`` and ``stream invites pending``: their text, from example answers of
``/economy/{week}``, ``/invites/funnel`` and ``/invites/pending`` (tests/unit/api_examples.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from stream.report import (
    cost_per_full,
    default_days,
    format_boards,
    format_days,
    format_distribution,
    format_economy,
    format_funnel,
    format_pending,
    format_rules,
    last_week,
)
from tests.unit.api_examples import ECONOMY, INVITES_FUNNEL, INVITES_PENDING, TZ


def _ms(*args: int, tz: str = TZ) -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc]


def test_distribution_and_band_share() -> None:
    assert format_distribution(ECONOMY) == [
        "Points per user (200 users active): p10 8 · p50 49 · p90 175 · max 552",
        "Inside the 200-300 band (seed 000's normal user): 10 users, 5.0%",
    ]
    empty = {"points_per_user": {"users": 0, "band": [200, 300]}}
    assert format_distribution(empty)[0].startswith("Points per user: no user earned points")


def test_points_by_rule_table_with_shares_and_total() -> None:
    lines = format_rules(ECONOMY)
    assert lines[0] == "Points by rule:"
    assert lines[1].split() == ["rule", "points", "share"]
    assert [line.split() for line in lines[2:]] == [
        ["message_text", "2,314", "45.1%"],
        ["weekly_groups", "2,160", "42.1%"],
        ["like_given", "481", "9.4%"],
        ["group_created", "180", "3.5%"],
        ["total", "5,135", "100.0%"],
    ]
    assert len({len(line) for line in lines[1:]}) == 1  # numbers aligned right
    assert format_rules({"points_by_rule": {}}) == ["Points by rule: none"]


def test_active_users_per_day_with_weekday_and_bars() -> None:
    lines = format_days(ECONOMY)
    assert lines[0] == "Active users per day:"
    assert lines[1].split()[:3] == ["Thu", "2026-11-19", "160"]
    assert lines[3].split() == ["Sat", "2026-11-21", "172", "#" * 30]  # the busiest day: a full bar
    assert lines[4].split() == ["Sun", "2026-11-22", "80", "#" * 14]


def test_boards_winner_and_top_3_open_and_without_winner() -> None:
    lines = format_boards(ECONOMY, TZ)
    assert lines[0] == "Boards (reached: when the final score was reached, Asia/Shanghai):"
    assert lines[1] == "  best_collaborating_group: winner g00251"
    assert lines[2].split() == ["1.", "g00251", "score", "140", "reached", "2026-11-22", "23:53:09"]
    assert lines[4].split()[:4] == ["3.", "g00178", "score", "86"]
    assert lines[5] == "  most_active_newcomer: closed, no winner (nobody scored)"
    assert lines[6].startswith("  most_valuable_contributor: open;")
    assert format_boards({"boards": {}}, TZ) == ["Boards: none in these rules"]
    still_open = {"boards": {"most_valuable_contributor": {"closed": False, "winner": None, "ranking": []}}}
    assert format_boards(still_open, TZ)[0] == "Boards:"


def test_the_whole_report() -> None:
    text = format_economy(ECONOMY, TZ)
    assert text.startswith("Economy of 2026-W47\n\nPoints per user (200 users active)")
    assert [part.splitlines()[0] for part in text.split("\n\n")][2:] == [
        "Points by rule:",
        "Active users per day:",
        "Boards (reached: when the final score was reached, Asia/Shanghai):",
    ]


@pytest.mark.parametrize(
    ("now", "tz", "week"),
    [
        (_ms(2026, 11, 28, 5, 31), TZ, "2026-W47"),
        (_ms(2026, 11, 23, 0, 30), TZ, "2026-W47"),  # Monday just after midnight in Shanghai...
        (_ms(2026, 11, 23, 0, 30), "UTC", "2026-W46"),  # ...still Sunday in UTC
        (_ms(2027, 1, 6, 12, 0), TZ, "2026-W53"),  # 2026 has 53 ISO weeks
        (_ms(2027, 1, 1, 12, 0), TZ, "2026-W52"),  # a Friday of 2026-W53
    ],
)
def test_last_week_is_the_iso_week_before_now_in_the_zone(now: int, tz: str, week: str) -> None:
    assert last_week(now, tz) == week


# --- stream report invites and stream invites pending ------------------------------------------------------


def test_the_invitation_funnel_per_channel_with_the_cost_per_fully_activated_invitee() -> None:
    lines = format_funnel(INVITES_FUNNEL).splitlines()
    assert (
        lines[0] == "Invitation funnel of the registrations of 2026-11-16 .. 2026-11-22 (by registration day)"
    )
    assert lines[2].split() == [
        "channel",
        "invites",
        "registrations",
        "held",
        "half",
        "full",
        "retained",
        "flags",
        "expired",
        "points",
        "paid",
        "cost/full",
    ]
    assert [line.split() for line in lines[3:7]] == [
        ["link", "120", "80", "3", "130", "50", "31", "2", "56", "1,180", "23.6"],
        ["poster", "40", "9", "0", "8", "3", "1", "1", "12", "54", "18.0"],
        ["qr", "5", "0", "0", "0", "0", "0", "0", "0", "0", "-"],  # nobody fully activated: no cost
        ["total", "165", "89", "3", "138", "53", "32", "3", "68", "1,234", "23.3"],
    ]
    assert len({len(line) for line in lines[2:7]}) == 1  # numbers aligned right
    assert lines[8].startswith("half: halves activated")
    empty = format_funnel({"from": "2026-12-01", "to": "2026-12-07", "channels": {}, "total": {}})
    assert empty.endswith("\n\nNo invitation in these days.")


def test_cost_per_full_activation() -> None:
    assert cost_per_full(1180, 50) == "23.6"
    assert cost_per_full(12345, 1) == "12,345.0"
    assert cost_per_full(-20, 0) == "-"


def test_the_waiting_invitations_table_in_local_time() -> None:
    lines = format_pending(INVITES_PENDING, TZ).splitlines()
    assert lines[0] == (
        "2 invitations waiting for an operator, 1,290 points promised "
        "(registered: Asia/Shanghai time; stream invites approve|reject INVITEE):"
    )
    assert lines[1].split() == ["invitee", "inviter", "channel", "registered", "reason", "points"]
    assert lines[2].split() == ["u000913", "u000172", "poster", "2026-11-23", "03:00:00", "daily_limit", "40"]
    assert lines[3].split() == ["u001204", "u000455", "link", "2026-11-24", "04:02:03", "budget", "1,250"]
    assert format_pending(INVITES_PENDING, "UTC").splitlines()[2].split()[3:5] == ["2026-11-22", "19:00:00"]
    assert (
        format_pending({"pending": [], "count": 0, "points": 0}, TZ) == "No invitation waits for an operator."
    )


def test_the_default_days_are_the_week_up_to_today_in_the_zone() -> None:
    now = _ms(2026, 11, 23, 0, 30)  # Monday just after midnight in Shanghai, still Sunday in UTC
    assert default_days(None, None, now, TZ) == ("2026-11-17", "2026-11-23")
    assert default_days(None, None, now, "UTC") == ("2026-11-16", "2026-11-22")
    assert default_days("2026-11-01", None, now, TZ) == ("2026-11-01", "2026-11-23")
    assert default_days(None, "2026-11-10", now, TZ) == ("2026-11-04", "2026-11-10")
