"""Keep one partition's event-time timers: deadlines that fire when the partition's event time passes them.

An invitee who never comes back sends no event that could expire its rewards, so deadlines are indexed
per partition and fire on any event of the partition whose time passes them (its watermark), never on
the wall clock. The watermark is stored (``\\0p\\0<n>\\0xw``): a deadline scheduled after the partition's
events have already passed it fires at once, so when it fires does not depend on the order in which
a partition's events and an invitation's steps arrive. The index is bucketed by day (``\\0p\\0<n>\\0x:<day ordinal>``: a list of
``[due, kind, key]``), with the ordered list of non-empty buckets in ``\\0p\\0<n>\\0xs``; the earliest due
time is remembered in memory, so an event that fires nothing costs one comparison.
"""

from __future__ import annotations

from typing import Any

from stream.core.state import Transaction

DAY_MS = 86_400_000
NEVER = 1 << 62


class Timers:
    """The timers of one partition (keys under its prefix)."""

    def __init__(self, prefix: bytes) -> None:
        self.index_key = prefix + b"xs"
        self.bucket_prefix = prefix + b"x:"
        self.watermark_key = prefix + b"xw"
        self.next_due: int | None = None  # None: not read since the partition was assigned
        self._watermark: int | None = None  # the latest event time seen (None: not read yet)
        self.unsaved = False  # the watermark moved since it was stored

    def watermark(self, tx: Transaction) -> int:
        """Return the partition's event time: the latest ``ts`` of its own events (0 before any)."""
        if self._watermark is None:
            stored = tx.get(self.watermark_key)
            self._watermark = int(stored["wm"]) if stored else 0
        return self._watermark

    def observe(self, tx: Transaction, ts: int) -> None:
        """Advance the partition's event time to ``ts`` (in memory: ``save`` stores it once per batch)."""
        if ts > self.watermark(tx):
            self._watermark = ts
            self.unsaved = True

    def save(self, tx: Transaction) -> None:
        """Store the partition's event time, so a timer scheduled after a restart fires at once.

        Stored as a mapping, like every other state value: a bare integer value broke the chaos suite's
        scale-out fault (awards lost and repeated when partitions moved; cause not found, see issue 8's note).
        """
        if self.unsaved and self._watermark is not None:
            tx.set(self.watermark_key, {"wm": self._watermark})
            self.unsaved = False

    def forget(self) -> None:
        """Read the earliest due time and the watermark again (after a rolled back transaction)."""
        self.next_due = None
        self._watermark = None
        self.unsaved = False

    def _bucket(self, ordinal: int) -> bytes:
        return self.bucket_prefix + str(ordinal).encode()

    def schedule(self, tx: Transaction, due: int, kind: str, key: str) -> None:
        """Fire ``(kind, key)`` once the partition's event time passes ``due`` (idempotent)."""
        ordinal = due // DAY_MS
        bucket_key = self._bucket(ordinal)
        entries: list[list[Any]] = tx.get(bucket_key) or []
        entry = [due, kind, key]
        if entry in entries:
            return
        tx.set(bucket_key, sorted([*entries, entry]))
        index: list[int] = tx.get(self.index_key) or []
        if ordinal not in index:
            tx.set(self.index_key, sorted([*index, ordinal]))
        if self.next_due is not None and due < self.next_due:
            self.next_due = due

    def earliest(self, tx: Transaction) -> int:
        """Return the earliest due time (``NEVER`` when none), reading the index once per assignment."""
        if self.next_due is None:
            index: list[int] = tx.get(self.index_key) or []
            self.next_due = NEVER
            if index:
                entries = tx.get(self._bucket(index[0])) or []
                self.next_due = entries[0][0] if entries else NEVER
        return self.next_due

    def fire(self, tx: Transaction, now: int) -> list[tuple[int, str, str]]:
        """Remove and return every timer due before ``now``, earliest first."""
        if now <= self.earliest(tx):
            return []
        index: list[int] = list(tx.get(self.index_key) or [])
        fired: list[tuple[int, str, str]] = []
        while index:
            bucket_key = self._bucket(index[0])
            entries: list[list[Any]] = tx.get(bucket_key) or []
            due_now = [e for e in entries if e[0] < now]
            fired.extend((int(e[0]), str(e[1]), str(e[2])) for e in due_now)
            rest = entries[len(due_now) :]
            if rest:
                if due_now:
                    tx.set(bucket_key, rest)
                self.next_due = rest[0][0]
                break
            tx.delete(bucket_key)
            index.pop(0)
        else:
            self.next_due = NEVER
        tx.set(self.index_key, index)
        return fired

    def pending(self, tx: Transaction) -> list[tuple[int, str, str]]:
        """Return every timer not fired yet, earliest first (for the query API)."""
        out: list[tuple[int, str, str]] = []
        for ordinal in tx.get(self.index_key) or []:
            out.extend((int(e[0]), str(e[1]), str(e[2])) for e in tx.get(self._bucket(ordinal)) or [])
        return out
