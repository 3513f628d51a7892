"""Keep a user's latest awards, with their reasons: the ledger of ``/users/{id}/ledger``.

Awards are appended to numbered chunks (``<user>\\0l:<n>``, ``CHUNK`` awards each); only the latest
``CHUNKS`` chunks are kept, so a batch rewrites one small chunk, never the whole ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.core.state import Transaction
from stream.engine.awards import BadgeAward, PointAward

CHUNK = 10
CHUNKS = 5
LIMIT = CHUNK * (CHUNKS - 1)
"""The ledger holds at least this many of the latest awards (at most ``CHUNK * CHUNKS``)."""


def chunk_key(p: bytes, n: int) -> bytes:
    """Return the key of ledger chunk ``n`` of the user with key prefix ``p``."""
    return p + b"l:" + str(n).encode()


def append(
    tx: Transaction, p: bytes, core: dict[str, Any], points: list[PointAward], badges: list[BadgeAward]
) -> None:
    """Append an event's awards to the ledger (``core`` is the user's changeable core record)."""
    seq = core.get("ls", 0)
    chunk: list[list[Any]] | None = None
    n = -1
    for award in (*points, *badges):
        if seq // CHUNK != n:
            if chunk is not None:
                tx.set(chunk_key(p, n), chunk)
            n = seq // CHUNK
            current = tx.get(chunk_key(p, n))
            chunk = list(current) if current is not None else []
            if n >= CHUNKS and not chunk:
                old = chunk_key(p, n - CHUNKS)
                if tx.get(old) is not None:
                    tx.delete(old)
        assert chunk is not None
        if type(award) is PointAward:
            chunk.append(
                [
                    award.award_id,
                    award.rule,
                    award.points,
                    award.period,
                    award.rules_version,
                    award.reason,
                    award.ts,
                    award.status,
                ]
            )
        else:
            assert isinstance(award, BadgeAward)
            chunk.append(
                [
                    award.award_id,
                    award.badge,
                    0,
                    award.period,
                    award.rules_version,
                    award.kind,
                    award.ts,
                    "badge",
                ]
            )
        seq += 1
    if chunk is not None:
        tx.set(chunk_key(p, n), chunk)
        core["ls"] = seq


def read(get: Callable[[bytes], Any], p: bytes, core: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Return up to ``limit`` of the latest awards, newest first."""
    seq = core.get("ls", 0)
    out: list[dict[str, Any]] = []
    n = (seq - 1) // CHUNK
    while n >= 0 and len(out) < limit:
        chunk = get(chunk_key(p, n)) or []
        for award_id, rule, points, period, version, reason, ts, status in reversed(chunk):
            entry: dict[str, Any] = {
                "award_id": award_id,
                "period": period,
                "rules_version": version,
                "ts": ts,
            }
            if status == "badge":
                entry.update(badge=rule, kind=reason)
            else:
                entry.update(rule=rule, points=points, status=status, reason=reason)
            out.append(entry)
            if len(out) >= limit:
                break
        n -= 1
    return out
