"""Remember which events a user has seen and keep only the periods still retained.

The core record lists the retained days as a bit mask from its latest day (``d0``, ``dm``: bit i is day
``d0 - i``) and the retained weeks, months and campaigns with their ends; ``px`` is the earliest end of
anything kept, so nothing is looked at until the horizon (watermark - retention) passes it. De-duplication
searches the seen fingerprints of every retained day's record: a redelivery may carry another ``ts``.
"""

from __future__ import annotations

from typing import Any

from stream.core.state import Transaction
from stream.engine.layout import SEEN
from stream.engine.periods import Calendar, Day


def seen_before(tx: Transaction, p: bytes, core: dict[str, Any], fp: bytes, calendar: Calendar) -> bool:
    """Tell whether any retained day has seen ``fp`` (a redelivery may carry another ``ts``)."""
    mask, d0 = core["dm"], core["d0"]
    day_for = calendar.day_for_ordinal
    i = 0
    while mask:
        if mask & 1:
            record = tx.get(p + day_for(d0 - i).day_key)
            if record is not None:
                seen = record.get(SEEN)
                if seen is not None:
                    position = seen.index.get(fp)
                    if position is not None and position < seen.n:
                        return True
        mask >>= 1
        i += 1
    return False


def advance(
    tx: Transaction, p: bytes, core: dict[str, Any], day: Day, ts: int, retention: int, calendar: Calendar
) -> None:
    """Move the watermark to ``ts``, drop the periods it leaves behind, and mark ``day`` as kept."""
    if ts > core["wm"]:
        core["wm"] = ts
        horizon = ts - retention
        if 0 < core["px"] <= horizon:
            prune(tx, p, core, horizon, calendar)
    ordinal = day.ordinal
    d0 = core["d0"]
    if ordinal > d0:
        core["dm"] = (core["dm"] << (ordinal - d0)) | 1 if d0 else 1
        core["d0"] = ordinal
    else:
        core["dm"] |= 1 << (d0 - ordinal)
    if not 0 < core["px"] <= day.end_ms:
        core["px"] = day.end_ms


def prune(tx: Transaction, p: bytes, core: dict[str, Any], horizon: int, calendar: Calendar) -> None:
    """Delete the periods that ended at or before ``horizon``; note the earliest end still kept."""
    mask, d0 = core["dm"], core["d0"]
    earliest = 0
    while mask:
        i = mask.bit_length() - 1
        old = calendar.day_for_ordinal(d0 - i)
        if old.end_ms > horizon:
            earliest = old.end_ms
            break
        key = p + old.day_key
        if tx.get(key) is not None:
            tx.delete(key)
        mask &= ~(1 << i)
    core["dm"] = mask
    for kind, tag in (("weeks", b"w:"), ("months", b"m:"), ("campaigns", b"c:")):
        kept: dict[str, int] = core[kind]
        if any(end <= horizon for end in kept.values()):
            for period, end in kept.items():
                if end <= horizon:
                    tx.delete(p + tag + period.encode())
            kept = core[kind] = {period: end for period, end in kept.items() if end > horizon}
        for end in kept.values():
            if not 0 < earliest <= end:
                earliest = end
    core["px"] = earliest
