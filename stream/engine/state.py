"""Hold one user's state: one document per user, encoded once per write.

The document keeps the counters of the periods still retained (days, ISO weeks, months), the
fingerprints of the events each retained day has seen (for de-duplication), lifetime totals, the
level, and the roster entry. Periods older than the retention are pruned as event time advances.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import orjson

from stream.engine.periods import Day

STATE_VERSION = 1


def fingerprint(event_id: str) -> int:
    """Return a 48-bit fingerprint of an event id (collisions among a user's ids are ~1e-8)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=6).digest(), "big")


def _bucket(end_ms: int) -> dict[str, Any]:
    return {"end": end_ms, "pts": {}, "n": {}}


class UserState:
    """Wrap a user's state document with the operations the rules need."""

    __slots__ = ("_seen", "doc")

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        self._seen: dict[str, set[int]] = {}  # day -> its fingerprints, built on first use
        self.doc: dict[str, Any] = (
            doc
            if doc is not None
            else {
                "v": STATE_VERSION,
                "wm": 0,
                "team": None,
                "roster": None,
                "points": 0,
                "level": 0,
                "life": {},
                "days": {},
                "weeks": {},
                "months": {},
            }
        )

    # --- encoding -----------------------------------------------------------------------------

    @classmethod
    def decode(cls, raw: bytes | None) -> UserState:
        """Return the state stored in ``raw``, or a fresh one when there is none."""
        if raw is None:
            return cls()
        return cls(orjson.loads(raw))

    def encode(self) -> bytes:
        """Return the document as compact JSON."""
        return orjson.dumps(self.doc)

    # --- periods ------------------------------------------------------------------------------

    def day(self, day: Day) -> dict[str, Any]:
        """Return the bucket of a day, creating it."""
        days = self.doc["days"]
        bucket = days.get(day.name)
        if bucket is None:
            bucket = days[day.name] = _bucket(day.end_ms)
            bucket["seen"] = []
        return bucket  # type: ignore[no-any-return]

    def week(self, day: Day) -> dict[str, Any]:
        """Return the bucket of the ISO week of a day, creating it."""
        weeks = self.doc["weeks"]
        bucket = weeks.get(day.week)
        if bucket is None:
            bucket = weeks[day.week] = _bucket(day.week_end_ms)
        return bucket  # type: ignore[no-any-return]

    def month(self, day: Day) -> dict[str, Any]:
        """Return the bucket of the month of a day, creating it."""
        months = self.doc["months"]
        bucket = months.get(day.month)
        if bucket is None:
            bucket = months[day.month] = _bucket(day.month_end_ms)
        return bucket  # type: ignore[no-any-return]

    def is_too_late(self, day: Day, retention_ms: int) -> bool:
        """Tell whether a day ended longer than the retention before this user's latest event."""
        watermark: int = self.doc["wm"]
        return day.end_ms + retention_ms <= watermark

    def advance(self, ts_ms: int, retention_ms: int) -> None:
        """Move this user's event-time watermark to ``ts_ms`` and prune periods it leaves behind."""
        doc = self.doc
        if ts_ms <= doc["wm"]:
            return
        doc["wm"] = ts_ms
        horizon = ts_ms - retention_ms
        for key in ("days", "weeks", "months"):
            buckets = doc[key]
            stale = [name for name, bucket in buckets.items() if bucket["end"] <= horizon]
            for name in stale:
                del buckets[name]
                self._seen.pop(name, None)

    # --- de-duplication -----------------------------------------------------------------------

    def seen(self, day: Day, bucket: dict[str, Any], event_id: str) -> bool:
        """Tell whether the day has seen this event id; remember it if not."""
        fp = fingerprint(event_id)
        index = self._seen.get(day.name)
        if index is None:
            index = self._seen[day.name] = set(bucket["seen"])
        if fp in index:
            return True
        index.add(fp)
        bucket["seen"].append(fp)
        return False

    # --- lifetime -----------------------------------------------------------------------------

    def count(self, bucket: dict[str, Any], counter: str, by: int = 1) -> int:
        """Add to a counter of a period bucket and return its new value."""
        n: dict[str, int] = bucket["n"]
        value = n.get(counter, 0) + by
        n[counter] = value
        return value

    def count_lifetime(self, counter: str, by: int = 1) -> int:
        """Add to a lifetime counter and return its new value."""
        life: dict[str, int] = self.doc["life"]
        value = life.get(counter, 0) + by
        life[counter] = value
        return value

    @property
    def team(self) -> str | None:
        """Return the user's team: the latest from their own events, else the roster's."""
        team: str | None = self.doc["team"]
        if team is None and self.doc["roster"] is not None:
            team = self.doc["roster"][0]
        return team
