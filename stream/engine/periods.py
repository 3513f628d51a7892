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
        name, week, month = (
            local.isoformat(),
            f"{iso.year}-W{iso.week:02d}",
            f"{local.year}-{local.month:02d}",
        )
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
