"""Read a user's state back as the public view of ``/users/{id}``: balance, level, counters, progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.engine.layout import CORE, COUNT, DISTINCT, DONE, PAID, prefix
from stream.engine.periods import Calendar
from stream.rules.compiler import CompiledRules

Get = Callable[[bytes], Any]


def _record(value: dict[str, Any] | None) -> dict[str, Any]:
    """Split a period record into its counters, the points paid per capped rule, and the thresholds paid."""
    value = value or {}
    counters: dict[str, Any] = {}
    paid: dict[str, int] = {}
    done: list[str] = []
    for entry, n in sorted(value.items()):
        tag, name = entry[0], entry[1:]
        if tag == COUNT:
            counters[name] = n
        elif tag == DISTINCT:
            counters[name] = len(n)
        elif tag == PAID:
            paid[name] = n
        elif tag == DONE:
            done.append(name)
    return {"counters": counters, "capped_points": paid, "done": done}


def user_view(get: Get, user_key: bytes, rules: CompiledRules, calendar: Calendar) -> dict[str, Any] | None:
    """Return the view of a user's state read with ``get`` (key -> decoded value), or None when unknown."""
    p = prefix(user_key)
    core = get(p + CORE)
    if core is None:
        return None
    days: dict[str, Any] = {}
    mask, d0, i = core["dm"], core["d0"], 0
    while mask:
        if mask & 1:
            name = calendar.day_for_ordinal(d0 - i).name
            days[name] = _record(get(p + b"d:" + name.encode()))
        mask >>= 1
        i += 1
    levels = [name for name, _ in rules.levels]
    roster = core["roster"]
    streaks = {}
    for counter in rules.source.counters:
        runs = get(p + b"k:" + counter.encode())
        if runs:
            latest = runs[-1]
            streaks[counter] = {
                "length": latest[1] - latest[0] + 1,
                "last_day": calendar.day_for_ordinal(latest[1]).name,
            }
    return {
        "team_id": core["team"] or (roster[0] if roster else None),
        "points": core["points"],
        "level": levels[min(core["level"], len(levels) - 1)],
        "watermark_ts": core["wm"],
        "lifetime": _record(core),
        "days": dict(sorted(days.items())),
        "weeks": {name: _record(get(p + b"w:" + name.encode())) for name in sorted(core["weeks"])},
        "months": {name: _record(get(p + b"m:" + name.encode())) for name in sorted(core["months"])},
        "campaigns": {name: _record(get(p + b"c:" + name.encode())) for name in sorted(core["campaigns"])},
        "streaks": streaks,
        "roster": roster,
        "left": core["left"],
    }
