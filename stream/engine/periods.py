"""Map event times to calendar periods in one time zone.

Days are local calendar days, weeks are ISO weeks starting Monday, months are calendar months.
Faust's own windows are aligned to the Unix epoch in UTC, so periods are computed here instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

LIFETIME = "lifetime"


@dataclass(frozen=True, slots=True)
class Day:
    """One local calendar day, with the names of the periods it belongs to."""

    name: str  # 2026-11-23
    week: str  # 2026-W48
    month: str  # 2026-11
    start_ms: int
    end_ms: int  # exclusive
    week_end_ms: int
    month_end_ms: int
    ordinal: int  # date.toordinal(), consecutive days differ by 1
    # the state keys of its periods, within a user's keys (stream/engine/layout.py)
    day_key: bytes = b""
    week_key: bytes = b""
    month_key: bytes = b""
    week_start_ms: int = 0
    month_start_ms: int = 0


def iso_week_name(local: date) -> str:
    """Return the name of the ISO week of a date: ``2026-W48``."""
    iso = local.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def week_of_day(day: str) -> str:
    """Return the name of the ISO week of a day's name (``2026-11-23`` -> ``2026-W48``)."""
    return iso_week_name(date.fromisoformat(day))


def week_monday(week: str) -> date:
    """Return the Monday of an ISO week's name (``2026-W48``); ValueError when it is not one."""
    year, number = week.split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


def month_first(month: str) -> date:
    """Return the first day of a month's name (``2026-11``); ValueError when it is not one."""
    year, number = month.split("-")
    return date(int(year), int(number), 1)


class Calendar:
    """Resolve epoch milliseconds to the local day, ISO week and month of a time zone."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self._last: Day | None = None
        self._by_ordinal: dict[int, Day] = {}

    def day_of(self, ts_ms: int) -> Day:
        """Return the local day containing ``ts_ms``."""
        last = self._last
        if last is not None and last.start_ms <= ts_ms < last.end_ms:
            return last
        local = datetime.fromtimestamp(ts_ms / 1000, self.zone).date()
        day = self.day_for_date(local)
        self._last = day
        return day

    def day_for_date(self, local: date) -> Day:
        """Return the Day of a local calendar date."""
        ordinal = local.toordinal()
        day = self._by_ordinal.get(ordinal)
        if day is None:
            if len(self._by_ordinal) > 4096:
                self._by_ordinal.clear()
            day = self._build(local)
            self._by_ordinal[ordinal] = day
        return day

    def week_start_ms(self, week: str) -> int:
        """Return the start (epoch ms) of an ISO week's name in this zone."""
        return self.day_for_date(week_monday(week)).start_ms

    def month_start_ms(self, month: str) -> int:
        """Return the start (epoch ms) of a month's name in this zone."""
        return self.day_for_date(month_first(month)).start_ms

    def day_for_ordinal(self, ordinal: int) -> Day:
        """Return the Day of a ``date.toordinal()``."""
        day = self._by_ordinal.get(ordinal)
        return day if day is not None else self.day_for_date(date.fromordinal(ordinal))

    def _start_ms(self, local: date) -> int:
        return int(datetime(local.year, local.month, local.day, tzinfo=self.zone).timestamp() * 1000)

    def _build(self, local: date) -> Day:
        iso = local.isocalendar()
        next_day = local + timedelta(days=1)
        next_week = local + timedelta(days=8 - iso.weekday)
        next_month = date(local.year + local.month // 12, local.month % 12 + 1, 1)
        name, week, month = local.isoformat(), iso_week_name(local), f"{local.year}-{local.month:02d}"
        return Day(
            name=name,
            week=week,
            month=month,
            start_ms=self._start_ms(local),
            end_ms=self._start_ms(next_day),
            week_end_ms=self._start_ms(next_week),
            month_end_ms=self._start_ms(next_month),
            ordinal=local.toordinal(),
            day_key=b"d:" + name.encode(),
            week_key=b"w:" + week.encode(),
            month_key=b"m:" + month.encode(),
            week_start_ms=self._start_ms(local - timedelta(days=iso.weekday - 1)),
            month_start_ms=self._start_ms(date(local.year, local.month, 1)),
        )
