"""Summarise the points economy of a week from retained state: seed 000 wants 200-300 points a week for a normal user.

Per partition: each user's points earned in the week (their week record), the partition's points by rule
and active users per day (its economy record). ``merge`` adds the partitions' parts into the report of
``stream report economy``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from stream.domains.messages import partition_owner
from stream.engine.layout import SEPARATOR
from stream.engine.periods import week_of_day
from stream.engine.processor import WEEK_POINTS

BAND = (200, 300)
"""Seed 000: a normal user earns 200-300 points a week (inclusive)."""


def economy_key(partition: int, week: str) -> bytes:
    """Return the key of a partition's economy record of a week."""
    return partition_owner(partition) + SEPARATOR + b"e:" + week.encode()


def week_points(scan: Iterator[tuple[bytes, Any]], week: str) -> dict[str, int]:
    """Return the points each user of a partition earned in ``week``, from a scan of all its keys.

    A user's events add their points to the record of their day, grants of the week to the week's
    record; a user counts when the user has a record of the week or of one of its days.
    """
    week_suffix = b"w:" + week.encode()
    weeks: dict[str, str] = {}
    out: dict[str, int] = {}
    for key, value in scan:
        if key.startswith(SEPARATOR) or not isinstance(value, dict):
            continue
        user, _, name = key.partition(SEPARATOR)
        if name.startswith(b"d:"):
            day = name[2:].decode()
            day_week = weeks.get(day)
            if day_week is None:
                day_week = weeks[day] = week_of_day(day)
            if day_week != week:
                continue
        elif name != week_suffix:
            continue
        who = user.decode()
        out[who] = out.get(who, 0) + int(value.get(WEEK_POINTS, 0))
    return out


def local_part(
    scan: Iterator[tuple[bytes, Any]], economy: dict[str, Any] | None, week: str
) -> dict[str, Any]:
    """Return one partition's part of a week's economy."""
    economy = economy or {}
    return {"users": week_points(scan, week), "rules": economy.get("r", {}), "days": economy.get("d", {})}


def quantile(sorted_values: list[int], q: float) -> int:
    """Return the ``q`` quantile of sorted values (nearest rank)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def distribution(points: Iterable[int]) -> dict[str, Any]:
    """Return p10, p50, p90, max and the share inside the band of per-user weekly points."""
    values = sorted(points)
    inside = sum(1 for v in values if BAND[0] <= v <= BAND[1])
    return {
        "users": len(values),
        "p10": quantile(values, 0.10),
        "p50": quantile(values, 0.50),
        "p90": quantile(values, 0.90),
        "max": values[-1] if values else 0,
        "band": list(BAND),
        "inside_band": inside,
        "inside_band_share": round(inside / len(values), 4) if values else 0.0,
    }


def merge(week: str, parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Return a week's economy from the partitions' parts (each user is on one partition only)."""
    users: dict[str, int] = {}
    rules: dict[str, int] = {}
    days: dict[str, int] = {}
    for part in parts:
        users.update(part["users"])
        for rule, n in part["rules"].items():
            rules[rule] = rules.get(rule, 0) + n
        for day, n in part["days"].items():
            days[day] = days.get(day, 0) + n
    return {
        "week": week,
        "points_per_user": distribution(users.values()),
        "points_by_rule": dict(sorted(rules.items(), key=lambda item: (-item[1], item[0]))),
        "active_users_per_day": dict(sorted(days.items())),
    }
