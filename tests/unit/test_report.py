"""``stream report economy``'s text, from an example answer of ``/economy/{week}`` (tests/unit/api_examples.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from stream.report import (
    format_boards,
    format_days,
    format_distribution,
    format_economy,
    format_rules,
    last_week,
)
from tests.unit.api_examples import ECONOMY, TZ


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
