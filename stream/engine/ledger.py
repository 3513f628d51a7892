"""Keep a user's latest awards, with their reasons: the ledger of ``/users/{id}/ledger``.

Awards are appended to numbered chunks (``<user>\\0l:<n>``, up to ``CHUNK`` awards each) in a ring of
``CHUNKS`` keys: a batch writes the one or two chunks its awards go to (one changelog record for most
users), never the whole ledger. The core record counts the awards appended (``ls``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.core.state import Transaction
from stream.engine.awards import BadgeAward, PointAward

CHUNK = 8
CHUNKS = 6
LIMIT = CHUNK * (CHUNKS - 1)
"""The ledger holds at least this many of the latest awards."""

_SLOTS = [b"l:" + str(slot).encode() for slot in range(CHUNKS)]


def chunk_key(p: bytes, seq: int) -> bytes:
    """Return the key of the chunk holding award number ``seq`` of the user with key prefix ``p``."""
    return p + _SLOTS[(seq // CHUNK) % CHUNKS]


def append(tx: Transaction, p: bytes, core: dict[str, Any], awards: list[PointAward | BadgeAward]) -> None:
    """Append awards to the ledger, in order (``core`` is the user's changeable core record).

    The pipeline appends a user's awards of a batch at once when the batch ends (one chunk written).
    Entries are tuples of plain values: never changed in place, and not tracked by the garbage
    collector, which the many cached entries would otherwise slow down.
    """
    seq = core.get("ls", 0)
    entries: list[tuple[Any, ...]] = []
    for a in awards:
        if isinstance(a, PointAward):
            entries.append(
                (a.award_id, a.rule, a.points, a.period, a.rules_version, a.reason, a.ts, a.status)
            )
        else:
            entries.append((a.award_id, a.badge, 0, a.period, a.rules_version, a.kind, a.ts, "badge"))
    while entries:
        room = CHUNK - seq % CHUNK
        part, entries = entries[:room], entries[room:]
        key = chunk_key(p, seq)
        current = tx.get(key) if seq % CHUNK else None  # a chunk's first award starts it afresh
        tx.set(key, [*current, *part] if current else part)
        seq += len(part)
    core["ls"] = seq


def read(get: Callable[[bytes], Any], p: bytes, core: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Return up to ``limit`` of the latest awards, newest first."""
    seq = core.get("ls", 0)
    out: list[dict[str, Any]] = []
    oldest = max(0, ((seq - 1) // CHUNK - (CHUNKS - 1)) * CHUNK)  # the first award of the oldest chunk held
    chunk: list[Any] = []
    for n in range(seq - 1, oldest - 1, -1):
        if len(out) >= limit:
            break
        if n == seq - 1 or n % CHUNK == CHUNK - 1:
            chunk = get(chunk_key(p, n)) or []
        index = n % CHUNK
        if index >= len(chunk):
            continue
        award_id, rule, points, period, version, reason, ts, status = chunk[index]
        item: dict[str, Any] = {"award_id": award_id, "period": period, "rules_version": version, "ts": ts}
        if status == "badge":
            item.update(badge=rule, kind=reason)
        else:
            item.update(rule=rule, points=points, status=status, reason=reason)
        out.append(item)
    return out
