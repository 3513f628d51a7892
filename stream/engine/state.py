"""Hold one user's state: one document per user, encoded once per write.

The document keeps the counters of the periods still retained (days, ISO weeks, months), the
fingerprints of the events each retained day has seen (for de-duplication), lifetime totals, the
level, and the roster entry. Periods older than the retention are pruned as event time advances.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from hashlib import blake2b
from typing import Any

import orjson

from stream.engine.periods import Day

STATE_VERSION = 1


FINGERPRINT_BYTES = 6


def fingerprint(event_id: str) -> bytes:
    """Return a 48-bit fingerprint of an event id (collisions among a day's ids of one user: ~1e-8)."""
    return blake2b(event_id.encode(), digest_size=FINGERPRINT_BYTES).digest()


class _SeenDay:
    """The fingerprints one day has seen: a set to look up, the packed bytes to store."""

    __slots__ = ("index", "packed")

    def __init__(self, stored: str) -> None:
        self.packed = bytearray(b64decode(stored))
        n = FINGERPRINT_BYTES
        self.index = {bytes(self.packed[i : i + n]) for i in range(0, len(self.packed), n)}


def _bucket(end_ms: int) -> dict[str, Any]:
    return {"end": end_ms, "pts": {}, "n": {}}


class UserState:
    """Wrap a user's state document with the operations the rules need."""

    __slots__ = ("_changed_days", "_seen", "doc")

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        self._seen: dict[str, _SeenDay] = {}  # day -> its fingerprints, unpacked on first use
        self._changed_days: set[str] = set()  # days whose packed fingerprints must be re-encoded
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
        """Return the document as compact JSON (fingerprints as base64 of their packed bytes)."""
        if self._changed_days:
            days = self.doc["days"]
            for name in self._changed_days:
                bucket = days.get(name)
                if bucket is not None:
                    bucket["seen"] = b64encode(self._seen[name].packed).decode()
            self._changed_days.clear()
        return orjson.dumps(self.doc)

    # --- periods ------------------------------------------------------------------------------

    def day(self, day: Day) -> dict[str, Any]:
        """Return the bucket of a day, creating it."""
        days = self.doc["days"]
        bucket = days.get(day.name)
        if bucket is None:
            bucket = days[day.name] = _bucket(day.end_ms)
            bucket["seen"] = ""
        return bucket  # type: ignore[no-any-return]

    def week(self, day: Day) -> dict[str, Any]:
        """Return the bucket of the ISO week of a day, creating it."""
        return self._period("weeks", day.week, day.week_end_ms)

    def month(self, day: Day) -> dict[str, Any]:
        """Return the bucket of the month of a day, creating it."""
        return self._period("months", day.month, day.month_end_ms)

    def _period(self, kind: str, name: str, end_ms: int) -> dict[str, Any]:
        buckets = self.doc[kind]
        bucket = buckets.get(name)
        if bucket is None:
            bucket = buckets[name] = _bucket(end_ms)
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
                self._changed_days.discard(name)

    # --- de-duplication -----------------------------------------------------------------------

    def seen(self, day: Day, bucket: dict[str, Any], event_id: str) -> bool:
        """Tell whether any retained day has seen this event id; remember it under ``day`` if not.

        Every retained day is searched, not only the event's own: a redelivery of an event with another
        ``ts`` (on another day) is still the same event and counts once.
        """
        fp = fingerprint(event_id)
        for name, retained in self.doc["days"].items():
            found = self._seen.get(name)
            if found is None:
                found = self._seen[name] = _SeenDay(retained["seen"])
            if fp in found.index:
                return True
        seen = self._seen.get(day.name)
        if seen is None:
            seen = self._seen[day.name] = _SeenDay(bucket["seen"])
        seen.index.add(fp)
        seen.packed += fp
        self._changed_days.add(day.name)
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
