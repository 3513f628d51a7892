"""Keep a group's weeks: interactions per user, the challenges crossed, the boards won.

A user's partition sends its cumulative interactions in a group's week (``GroupCount``); the group keeps
the largest per user, so a replay changes nothing. The week's total is the sum. When it first reaches a
challenge's threshold, every user who interacted gets a ``Grant``, and so does each user who interacts
later that week. The board score counts only what was not late for the board (see
stream/domains/partition.py), so a closed week's board never moves.
"""

from __future__ import annotations

from typing import Any

from stream.core.state import Transaction
from stream.domains.grants import challenge_grant, title_grant
from stream.domains.messages import Grant, GroupCount, GroupWon
from stream.engine.layout import SEPARATOR
from stream.rules.compiler import CompiledRules

WEEK_MS = 7 * 86_400_000


def week_key(owner: bytes, week: str) -> bytes:
    """Return the key of a group's week."""
    return owner + SEPARATOR + b"w:" + week.encode()


def _too_old(tx: Transaction, owner: bytes, week_start_ms: int, retention_ms: int) -> bool:
    """Tell whether a week is past the retention of the group's latest week; remember the latest."""
    core_key = owner + SEPARATOR + b"core"
    core = tx.get(core_key)
    latest = core["latest"] if core is not None else 0
    if week_start_ms + WEEK_MS + retention_ms <= latest:
        return True
    if week_start_ms > latest:
        core = tx.edit(core_key)
        core["latest"] = week_start_ms
        kept = {w: s for w, s in core.get("weeks", {}).items() if s + WEEK_MS + retention_ms > week_start_ms}
        for week in core.get("weeks", {}):
            if week not in kept:
                tx.delete(week_key(owner, week))
        core["weeks"] = kept
    return False


def _remember_week(tx: Transaction, owner: bytes, week: str, week_start_ms: int) -> None:
    core = tx.edit(owner + SEPARATOR + b"core")
    weeks = core.get("weeks", {})
    if week not in weeks:
        core["weeks"] = {**weeks, week: week_start_ms}


def on_count(
    tx: Transaction, count: GroupCount, rules: CompiledRules, late: bool
) -> tuple[list[Grant], tuple[int, int] | None]:
    """Apply a user's cumulative count; return the grants it makes and the group's new board score."""
    owner = count.owner()
    if _too_old(tx, owner, count.week_start_ms, rules.retention_ms):
        return [], None
    key = week_key(owner, count.week)
    current = tx.get(key)
    users: dict[str, list[int]] = current["u"] if current is not None else {}
    before = users.get(count.user)
    if before is not None and before[0] >= count.n:
        return [], None  # seen already (a replay, or an older count)
    if current is None:
        _remember_week(tx, owner, count.week, count.week_start_ms)
    record = tx.edit(key, _new_week)
    delta = count.n - (before[0] if before is not None else 0)
    record["u"] = {**users, count.user: [count.n, max(count.last_ts, before[1] if before else 0)]}
    record["n"] += delta
    score = None
    if not late:
        record["bn"] += delta
        record["bts"] = max(record["bts"], count.last_ts)
        score = (record["bn"], record["bts"])
    grants: list[Grant] = []
    end_ms = count.week_start_ms + WEEK_MS
    for challenge in rules.challenges:
        if challenge.owner != "group":
            continue
        if challenge.name in record["paid"]:
            if before is None:
                grants.append(_grant(challenge, count, count.user, end_ms, rules))
        elif record["n"] >= challenge.threshold:
            record["paid"] = [*record["paid"], challenge.name]
            grants.extend(_grant(challenge, count, user, end_ms, rules) for user in sorted(record["u"]))
    if before is None:
        for board, title, version in record["won"]:
            grants.append(
                title_grant(
                    board, title, count.user, count.week, count.week_start_ms, end_ms, version, count.group
                )
            )
    return grants, score


def _grant(challenge: Any, count: GroupCount, user: str, end_ms: int, rules: CompiledRules) -> Grant:
    return challenge_grant(
        challenge, user, count.group, count.week, count.week_start_ms, end_ms, rules.version
    )


def on_won(tx: Transaction, won: GroupWon) -> list[Grant]:
    """Record that the group won a board's week; title each of its members active that week."""
    key = week_key(won.owner(), won.week)
    current = tx.get(key)
    if current is not None and any(entry[0] == won.board for entry in current["won"]):
        return []
    record = tx.edit(key, _new_week)
    record["won"] = [*record["won"], [won.board, won.title, won.version]]
    end_ms = won.week_start_ms + WEEK_MS
    return [
        title_grant(won.board, won.title, user, won.week, won.week_start_ms, end_ms, won.version, won.group)
        for user in sorted(record["u"])
    ]


def _new_week() -> dict[str, Any]:
    return {"n": 0, "u": {}, "bn": 0, "bts": 0, "paid": [], "won": []}


def group_view(get: Any, owner: bytes, week: str, rules: CompiledRules) -> dict[str, Any] | None:
    """Return the public view of a group's week, or None when the group has no state for it."""
    record = get(week_key(owner, week))
    if record is None:
        return None
    challenges = [
        {
            "rule": c.name,
            "threshold": c.threshold,
            "points": c.points,
            "reached": c.name in record["paid"],
        }
        for c in rules.challenges
        if c.owner == "group"
    ]
    return {
        "week": week,
        "interactions": record["n"],
        "members": {user: n for user, (n, _ts) in sorted(record["u"].items())},
        "challenges": challenges,
        "titles": [board for board, _title, _version in record["won"]],
    }
