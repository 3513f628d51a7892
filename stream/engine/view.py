"""Read a user's state back as the public view of ``/users/{id}``: balance, level, badges, counters, progress.

Period records hold counters (``#``/``~``), points paid by capped rules (``$``), thresholds paid (``!``),
events ignored or capped by reason (``?``), and in a week's record the user's interactions per group
(``%``), board scores (``^``) and the points earned (``+p``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.engine import ledger
from stream.engine.layout import CORE, COUNT, DISTINCT, DONE, IGNORED_TAG, PAID, prefix, team_of
from stream.engine.periods import Calendar, Day, week_of_day
from stream.engine.processor import BOARD_TAG, GROUP_TAG, WEEK_POINTS
from stream.rules.compiler import CompiledRules

Get = Callable[[bytes], Any]


def _record(value: dict[str, Any] | None) -> dict[str, Any]:
    """Split a period record into its counters, the points paid per capped rule, and the thresholds paid."""
    value = value or {}
    counters: dict[str, Any] = {}
    paid: dict[str, int] = {}
    done: list[str] = []
    ignored: dict[str, int] = {}
    granted: list[str] = []
    groups: list[str] = []
    boards: dict[str, int] = {}
    for entry, n in sorted(value.items()):
        tag, name = entry[0], entry[1:]
        if tag == COUNT:
            counters[name] = n
        elif tag == DISTINCT:
            counters[name] = len(n)
        elif tag == PAID:
            paid[name] = n
        elif tag == DONE:
            if "@" in name:
                granted.append(name)  # from a group, team or board: rule@group, board@board
            else:
                done.append(name)
        elif tag == IGNORED_TAG:
            ignored[name] = n
        elif tag == GROUP_TAG:
            groups.append(name)
        elif tag == BOARD_TAG:
            boards[name] = n[0]
    record: dict[str, Any] = {"counters": counters, "capped_points": paid, "done": done}
    if ignored:
        record["ignored"] = ignored
    if granted:
        record["granted"] = granted
    if groups:
        record["groups"] = groups
    if boards:
        record["board_scores"] = boards
    if WEEK_POINTS in value:
        record["points"] = value[WEEK_POINTS]
    return record


def user_view(
    get: Get, user_key: bytes, rules: CompiledRules, calendar: Calendar, now_ms: int | None = None
) -> dict[str, Any] | None:
    """Return the view of a user's state read with ``get`` (key -> decoded value), or None when unknown.

    "Today" and "this week" are those of ``now_ms`` (default: the user's latest event time).
    """
    p = prefix(user_key)
    core = get(p + CORE)
    if core is None:
        return None
    today = calendar.day_of(now_ms if now_ms is not None else core["wm"] or 0)
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
    day_record = get(p + today.day_key) or {}
    week_record = get(p + today.week_key) or {}
    month_record = get(p + today.month_key) or {}
    return {
        "team_id": team_of(core),
        "points": core["points"],
        "balance": core["points"],
        "level": levels[min(core["level"], len(levels) - 1)],
        "badges": _badges(core, rules, [day_record, week_record]),
        "today": {"day": today.name, **_record(day_record)},
        "this_week": {
            "week": today.week,
            **_record(week_record),
            "points": week_record.get(WEEK_POINTS, 0)
            + sum(
                record.get("points", 0) for name, record in days.items() if week_of_day(name) == today.week
            ),
        },
        "tasks": _progress(core, rules, today, day_record, week_record, month_record, streaks, calendar),
        "ledger_size": min(core.get("ls", 0), ledger.LIMIT),
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


def _badges(
    core: dict[str, Any], rules: CompiledRules, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Return the badges a user holds: levels reached, achievements, tasks of today and this week, titles."""
    out: list[dict[str, Any]] = [
        {"badge": name, "kind": "level"} for name, _ in rules.levels[1 : core["level"] + 1]
    ]
    thresholds = [t for plan in rules.plans.values() for step in plan.counters for t in step.thresholds]
    for keyed in (plan.keyed.values() for plan in rules.plans.values()):
        for _points, counters in keyed:
            thresholds.extend(t for step in counters for t in step.thresholds)
    seen: set[str] = set()
    for threshold in thresholds:
        if threshold.badge is None or threshold.name in seen:
            continue
        seen.add(threshold.name)
        for record in (core, *records):
            if threshold.done in record:
                out.append({"badge": threshold.badge, "kind": threshold.badge_kind})
                break
    out.extend({"badge": badge, "kind": "title", "period": week} for badge, week in core.get("titles", []))
    return out


def _progress(
    core: dict[str, Any],
    rules: CompiledRules,
    today: Day,
    day: dict[str, Any],
    week: dict[str, Any],
    month: dict[str, Any],
    streaks: dict[str, Any],
    calendar: Calendar,
) -> list[dict[str, Any]]:
    """Return every threshold rule's progress in its current period (today, this week, month, lifetime)."""
    records = {"day": day, "week": week, "month": month, "lifetime": core}
    steps = [step for plan in rules.plans.values() for step in plan.counters]
    for plan in rules.plans.values():
        for _points, counters in plan.keyed.values():
            steps.extend(counters)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for step in steps:
        for threshold in step.thresholds:
            if threshold.name in seen:
                continue
            seen.add(threshold.name)
            if step.per == "streak":
                per = threshold.per or "day"
                streak = streaks.get(step.name)
                first = _period_start(today, per, calendar)
                count = streak["length"] if streak and streak["last_day"] >= first else 0
            elif step.per in records:
                per = step.per
                value = records[per].get(step.entry, 0)
                count = len(value) if isinstance(value, list) else value
            else:
                continue  # a campaign's counter: see "campaigns"
            out.append(
                {
                    "rule": threshold.name,
                    "per": per,
                    "count": count,
                    "threshold": threshold.threshold,
                    "done": threshold.done in records.get(per, {}),
                    "badge": threshold.badge_kind,
                }
            )
    return sorted(out, key=lambda item: (item["per"], item["rule"]))


def _period_start(day: Day, per: str, calendar: Calendar) -> str:
    """Return the name of the first day of ``day``'s period (a streak counts if it reaches into it)."""
    if per == "day":
        return day.name
    if per == "week":
        return calendar.day_of(day.week_start_ms).name
    return calendar.day_of(day.month_start_ms).name


def ledger_view(get: Get, user_key: bytes, limit: int) -> list[dict[str, Any]] | None:
    """Return a user's latest awards, newest first, or None when the user is unknown."""
    p = prefix(user_key)
    core = get(p + CORE)
    if core is None:
        return None
    return ledger.read(get, p, core, limit)
