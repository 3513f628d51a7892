"""Keep a user's latest awards, with their reasons: the ledger of ``/users/{id}/ledger``.

A ring of ``SIZE`` keys per user (``<user>\\0l:<slot>``), one award each: an award writes its own small
key once, so a batch's writes grow with the awards it pays, never with the ledger's length. The core
record counts the awards appended (``ls``); the latest ``SIZE`` are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.core.state import Transaction
from stream.engine.awards import BadgeAward, PointAward

SIZE = 40
LIMIT = SIZE
"""The ledger holds this many of the latest awards."""

_SLOTS = [b"l:" + str(slot).encode() for slot in range(SIZE)]


def slot_key(p: bytes, seq: int) -> bytes:
    """Return the key holding award number ``seq`` of the user with key prefix ``p``."""
    return p + _SLOTS[seq % SIZE]


def append(
    tx: Transaction, p: bytes, core: dict[str, Any], points: list[PointAward], badges: list[BadgeAward]
) -> None:
    """Append an event's awards to the ledger (``core`` is the user's changeable core record).

    Entries are tuples: never changed in place, and a tuple of plain values is not tracked by the
    garbage collector, which the many cached entries would otherwise slow down.
    """
    seq = core.get("ls", 0)
    for award in points:
        tx.set(
            p + _SLOTS[seq % SIZE],
            (award.award_id, award.rule, award.points, award.period, award.rules_version, award.reason,
             award.ts, award.status),
        )  # fmt: skip
        seq += 1
    for badge in badges:
        tx.set(
            p + _SLOTS[seq % SIZE],
            [
                badge.award_id,
                badge.badge,
                0,
                badge.period,
                badge.rules_version,
                badge.kind,
                badge.ts,
                "badge",
            ],
        )
        seq += 1
    core["ls"] = seq


def read(get: Callable[[bytes], Any], p: bytes, core: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Return up to ``limit`` of the latest awards, newest first."""
    seq = core.get("ls", 0)
    out: list[dict[str, Any]] = []
    for n in range(seq - 1, max(-1, seq - 1 - min(limit, SIZE)), -1):
        entry = get(slot_key(p, n))
        if entry is None:
            continue
        award_id, rule, points, period, version, reason, ts, status = entry
        item: dict[str, Any] = {"award_id": award_id, "period": period, "rules_version": version, "ts": ts}
        if status == "badge":
            item.update(badge=rule, kind=reason)
        else:
            item.update(rule=rule, points=points, status=status, reason=reason)
        out.append(item)
    return out
