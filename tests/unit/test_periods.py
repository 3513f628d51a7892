"""Unit tests of stream.engine.periods: local days, ISO weeks and months in a time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.engine.periods import LIFETIME, Calendar, Day

SECOND = 1000
HOUR = 3_600_000
DAY = 86_400_000
SHANGHAI = "Asia/Shanghai"


def utc_ms(*args: int) -> int:
    """Epoch ms of a UTC wall time."""
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def local_ms(zone: str, *args: int) -> int:
    """Epoch ms of a wall time in ``zone``."""
    return int(datetime(*args, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def iso_week(d: date) -> str:
    iso = d.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


# --- Asia/Shanghai day boundaries -------------------------------------------------------------


def test_lifetime_name() -> None:
    assert LIFETIME == "lifetime"


def test_shanghai_local_midnight_is_1600_utc() -> None:
    cal = Calendar(SHANGHAI)
    midnight = utc_ms(2026, 11, 22, 16)
    assert midnight == 1_795_363_200_000
    before = cal.day_of(midnight - 1)  # 2026-11-22 23:59:59.999 local
    after = cal.day_of(midnight)  # 2026-11-23 00:00 local
    assert before.name == "2026-11-22"
    assert after.name == "2026-11-23"
    assert before.end_ms == after.start_ms == midnight
    assert after.end_ms - after.start_ms == DAY
    assert after.ordinal == before.ordinal + 1


def test_shanghai_day_fields() -> None:
    day = Calendar(SHANGHAI).day_of(utc_ms(2026, 11, 23, 4, 30))  # 12:30 local, a Monday
    assert day == Day(
        name="2026-11-23",
        week="2026-W48",
        month="2026-11",
        start_ms=utc_ms(2026, 11, 22, 16),
        end_ms=utc_ms(2026, 11, 23, 16),
        week_end_ms=utc_ms(2026, 11, 29, 16),
        month_end_ms=utc_ms(2026, 11, 30, 16),
        ordinal=date(2026, 11, 23).toordinal(),
        day_key=b"d:2026-11-23",
        week_key=b"w:2026-W48",
        month_key=b"m:2026-11",
        week_start_ms=utc_ms(2026, 11, 22, 16),
        month_start_ms=utc_ms(2026, 10, 31, 16),
    )


def test_shanghai_utc_date_differs_from_local_date() -> None:
    cal = Calendar(SHANGHAI)
    # 2026-11-22 20:00 UTC is 2026-11-23 04:00 in Shanghai
    assert cal.day_of(utc_ms(2026, 11, 22, 20)).name == "2026-11-23"
    # 2026-11-23 15:59:59.999 UTC is still 2026-11-23 in Shanghai, 16:00 UTC is the 24th
    assert cal.day_of(utc_ms(2026, 11, 23, 16) - 1).name == "2026-11-23"
    assert cal.day_of(utc_ms(2026, 11, 23, 16)).name == "2026-11-24"


@pytest.mark.parametrize("ms_before", [1, 999, SECOND, HOUR])
def test_last_instants_of_a_day_stay_in_it(ms_before: int) -> None:
    cal = Calendar(SHANGHAI)
    midnight = local_ms(SHANGHAI, 2026, 11, 24)
    assert cal.day_of(midnight - ms_before).name == "2026-11-23"
    assert cal.day_of(midnight + ms_before - 1).name == "2026-11-24"


# --- ISO weeks ------------------------------------------------------------------------------------


def test_sunday_to_monday_changes_week() -> None:
    cal = Calendar(SHANGHAI)
    sunday = cal.day_of(local_ms(SHANGHAI, 2026, 11, 29, 23, 59, 59) + 999)
    monday = cal.day_of(local_ms(SHANGHAI, 2026, 11, 30))
    assert (sunday.name, sunday.week) == ("2026-11-29", "2026-W48")
    assert (monday.name, monday.week) == ("2026-11-30", "2026-W49")
    assert sunday.week_end_ms == monday.start_ms
    assert monday.week_end_ms == local_ms(SHANGHAI, 2026, 12, 7)


def test_every_day_of_a_week_has_the_same_week_and_week_end() -> None:
    cal = Calendar(SHANGHAI)
    days = [cal.day_for_date(date(2026, 11, 23) + timedelta(days=i)) for i in range(7)]
    assert {d.week for d in days} == {"2026-W48"}
    assert {d.week_end_ms for d in days} == {local_ms(SHANGHAI, 2026, 11, 30)}
    assert days[-1].end_ms == days[-1].week_end_ms


@pytest.mark.parametrize(
    ("local", "week", "month"),
    [
        (date(2026, 12, 28), "2026-W53", "2026-12"),
        (date(2026, 12, 31), "2026-W53", "2026-12"),
        (date(2027, 1, 1), "2026-W53", "2027-01"),
        (date(2027, 1, 3), "2026-W53", "2027-01"),
        (date(2027, 1, 4), "2027-W01", "2027-01"),
        (date(2020, 12, 31), "2020-W53", "2020-12"),
        (date(2021, 1, 3), "2020-W53", "2021-01"),
        (date(2021, 1, 4), "2021-W01", "2021-01"),
        (date(2024, 12, 30), "2025-W01", "2024-12"),  # Monday of ISO 2025-W01 lies in 2024
        (date(2025, 12, 29), "2026-W01", "2025-12"),
        (date(2026, 1, 1), "2026-W01", "2026-01"),
    ],
)
def test_iso_week_at_year_boundaries(local: date, week: str, month: str) -> None:
    assert iso_week(local) == week  # the expectation agrees with datetime's own ISO calendar
    day = Calendar(SHANGHAI).day_of(local_ms(SHANGHAI, local.year, local.month, local.day, 12))
    assert (day.name, day.week, day.month) == (local.isoformat(), week, month)


def test_week_53_of_2026_exists_and_ends_on_monday_2027_01_04() -> None:
    assert date(2026, 12, 31).isocalendar().week == 53
    cal = Calendar(SHANGHAI)
    week_days = [cal.day_for_date(date(2026, 12, 28) + timedelta(days=i)) for i in range(7)]
    assert {d.week for d in week_days} == {"2026-W53"}
    assert {d.week_end_ms for d in week_days} == {local_ms(SHANGHAI, 2027, 1, 4)}
    assert [d.month for d in week_days] == ["2026-12"] * 4 + ["2027-01"] * 3


def test_week_names_match_isocalendar_over_five_years() -> None:
    cal = Calendar(SHANGHAI)
    d = date(2024, 12, 1)
    while d < date(2029, 2, 1):
        day = cal.day_for_date(d)
        assert day.week == iso_week(d), d
        assert day.month == f"{d.year}-{d.month:02d}", d
        monday_after = d + timedelta(days=8 - d.isoweekday())
        assert day.week_end_ms == local_ms(SHANGHAI, monday_after.year, monday_after.month, monday_after.day)
        d += timedelta(days=1)


# --- months -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "next_first"),
    [
        (date(2026, 11, 30), date(2026, 12, 1)),
        (date(2026, 12, 31), date(2027, 1, 1)),
        (date(2027, 2, 28), date(2027, 3, 1)),
        (date(2028, 2, 29), date(2028, 3, 1)),  # leap year
        (date(2026, 4, 30), date(2026, 5, 1)),
        (date(2026, 1, 31), date(2026, 2, 1)),
    ],
)
def test_month_ends(last: date, next_first: date) -> None:
    cal = Calendar(SHANGHAI)
    end = local_ms(SHANGHAI, next_first.year, next_first.month, 1)
    last_day = cal.day_for_date(last)
    assert last_day.month == f"{last.year}-{last.month:02d}"
    assert last_day.month_end_ms == last_day.end_ms == end
    first_of_month = cal.day_for_date(last.replace(day=1))
    assert first_of_month.month_end_ms == end
    assert cal.day_of(end - 1).month == last_day.month
    after = cal.day_of(end)
    assert after.name == next_first.isoformat()
    assert after.month == f"{next_first.year}-{next_first.month:02d}"
    assert after.month_end_ms > end


# --- a zone with daylight saving time -----------------------------------------------------------

NEW_YORK = "America/New_York"


@pytest.mark.parametrize(
    ("local", "hours"),
    [
        (date(2026, 3, 7), 24),
        (date(2026, 3, 8), 23),  # clocks spring forward at 02:00
        (date(2026, 3, 9), 24),
        (date(2026, 10, 31), 24),
        (date(2026, 11, 1), 25),  # clocks fall back at 02:00
        (date(2026, 11, 2), 24),
    ],
)
def test_dst_day_lengths(local: date, hours: int) -> None:
    day = Calendar(NEW_YORK).day_for_date(local)
    assert day.end_ms - day.start_ms == hours * HOUR
    assert day.start_ms == local_ms(NEW_YORK, local.year, local.month, local.day)


def test_dst_boundaries_are_local_midnights() -> None:
    cal = Calendar(NEW_YORK)
    # 2026-03-08 00:00 EST = 05:00 UTC; 2026-03-09 00:00 EDT = 04:00 UTC
    assert cal.day_of(utc_ms(2026, 3, 8, 5) - 1).name == "2026-03-07"
    assert cal.day_of(utc_ms(2026, 3, 8, 5)).name == "2026-03-08"
    assert cal.day_of(utc_ms(2026, 3, 9, 4) - 1).name == "2026-03-08"
    assert cal.day_of(utc_ms(2026, 3, 9, 4)).name == "2026-03-09"
    # the repeated hour of 2026-11-01 (01:00-02:00 happens twice) stays in that day
    assert cal.day_of(utc_ms(2026, 11, 1, 5, 30)).name == "2026-11-01"  # 01:30 EDT
    assert cal.day_of(utc_ms(2026, 11, 1, 6, 30)).name == "2026-11-01"  # 01:30 EST
    assert cal.day_of(utc_ms(2026, 11, 2, 5) - 1).name == "2026-11-01"
    assert cal.day_of(utc_ms(2026, 11, 2, 5)).name == "2026-11-02"


def test_dst_week_is_one_hour_short_and_month_end_is_local() -> None:
    cal = Calendar(NEW_YORK)
    monday = cal.day_for_date(date(2026, 3, 2))
    assert monday.week_end_ms - monday.start_ms == 7 * DAY - HOUR
    november = cal.day_for_date(date(2026, 11, 1))
    assert november.month_end_ms == utc_ms(2026, 12, 1, 5)  # midnight EST


# --- UTC ------------------------------------------------------------------------------------------


def test_utc_days_are_epoch_aligned() -> None:
    cal = Calendar("UTC")
    epoch = cal.day_of(0)
    assert (epoch.name, epoch.week, epoch.month, epoch.start_ms, epoch.end_ms) == (
        "1970-01-01",
        "1970-W01",
        "1970-01",
        0,
        DAY,
    )
    day = cal.day_of(utc_ms(2026, 11, 23, 23, 59, 59) + 999)
    assert day.name == "2026-11-23"
    assert day.start_ms % DAY == 0
    assert day.end_ms - day.start_ms == DAY
    assert cal.day_of(utc_ms(2026, 11, 24)).name == "2026-11-24"


def test_same_instant_different_zones() -> None:
    ts = utc_ms(2026, 11, 22, 18)  # Sunday 18:00 UTC
    assert Calendar("UTC").day_of(ts).week == "2026-W47"
    assert Calendar(SHANGHAI).day_of(ts).name == "2026-11-23"
    assert Calendar(SHANGHAI).day_of(ts).week == "2026-W48"
    assert Calendar(NEW_YORK).day_of(ts).name == "2026-11-22"


# --- caching ----------------------------------------------------------------------------------


def test_alternating_days_are_not_confused_by_the_cache() -> None:
    cal = Calendar(SHANGHAI)
    a = local_ms(SHANGHAI, 2026, 11, 23, 10)
    b = local_ms(SHANGHAI, 2026, 11, 25, 10)
    for _ in range(3):
        assert cal.day_of(a).name == "2026-11-23"
        assert cal.day_of(b).name == "2026-11-25"
        assert cal.day_of(a - DAY).name == "2026-11-22"


def test_many_days_survive_cache_clearing() -> None:
    cal = Calendar(SHANGHAI)
    start = date(2010, 1, 1)
    for i in range(0, 5000, 7):
        d = start + timedelta(days=i)
        assert cal.day_for_date(d).name == d.isoformat()
    for i in range(0, 5000, 13):
        d = start + timedelta(days=i)
        day = cal.day_of(local_ms(SHANGHAI, d.year, d.month, d.day, 23))
        assert day.name == d.isoformat()
        assert day.ordinal == d.toordinal()


# --- properties ---------------------------------------------------------------------------------

ZONES = [SHANGHAI, NEW_YORK, "UTC", "Europe/London", "Australia/Sydney", "America/Santiago", "Asia/Kolkata"]


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    ts=st.integers(min_value=utc_ms(2000, 1, 1), max_value=utc_ms(2040, 1, 1)),
)
def test_day_of_agrees_with_zoneinfo(zone: str, ts: int) -> None:
    cal = Calendar(zone)
    day = cal.day_of(ts)
    local = datetime.fromtimestamp(ts // 1000, ZoneInfo(zone)).date()
    assert day.name == local.isoformat()
    assert day.week == iso_week(local)
    assert day.month == f"{local.year}-{local.month:02d}"
    assert day.start_ms <= ts < day.end_ms <= day.week_end_ms
    assert day.end_ms <= day.month_end_ms
    assert cal.day_of(day.start_ms) == day
    assert cal.day_of(day.end_ms - 1) == day
    assert cal.day_of(day.end_ms).ordinal == day.ordinal + 1
    assert cal.day_of(day.start_ms - 1).ordinal == day.ordinal - 1
    assert 23 * HOUR <= day.end_ms - day.start_ms <= 25 * HOUR
