"""Keep a group's weeks: interactions per source partition, the members, the challenges crossed, the boards won.

Every partition sends its *cumulative* count of a group's week (``GroupCount``; the group keeps the
largest per partition, so a replay changes nothing), and a user's first interaction in the group's week
travels with the count that includes it (the group keeps the set of members). A partition sends a user's join before the counts that
include the user's interactions, so at the crossing every counted user is a member. When the week's
total first reaches a challenge's threshold, every member gets a ``Grant``, and so does each user who
joins later that week. The board score counts only what was not late for the board (see
stream/domains/partition.py), so a closed week's board never moves.
"""

from __future__ import annotations

from typing import Any

from stream.core.state import Transaction
from stream.domains.grants import challenge_grant, title_grant
from stream.domains.messages import Grant, GroupCount, GroupJoin, GroupWon
from stream.engine.layout import SEPARATOR
from stream.rules.compiler import Challenge, CompiledRules

WEEK_MS = 7 * 86_400_000


def week_key(owner: bytes, week: str) -> bytes:
    """Return the key of a group's week: counts per partition, totals, challenges paid, boards won."""
    return owner + SEPARATOR + b"w:" + week.encode()


def members_key(owner: bytes, week: str) -> bytes:
    """Return the key of a group's members of a week: user -> time of the first interaction."""
    return owner + SEPARATOR + b"u:" + week.encode()


def _too_old(tx: Transaction, owner: bytes, week_start_ms: int, retention_ms: int) -> bool:
    """Tell whether a week is past the retention of the group's latest week; drop the weeks it passes."""
    core_key = owner + SEPARATOR + b"core"
    core = tx.get(core_key)
    latest = core["latest"] if core is not None else 0
    if week_start_ms + WEEK_MS + retention_ms <= latest:
        return True
    if week_start_ms > latest:
        core = tx.edit(core_key)
        core["latest"] = week_start_ms
        weeks = core.get("weeks", {})
        kept = {w: s for w, s in weeks.items() if s + WEEK_MS + retention_ms > week_start_ms}
        for week in weeks:
            if week not in kept:
                tx.delete(week_key(owner, week))
                tx.delete(members_key(owner, week))
        core["weeks"] = kept
    return False


def _week(tx: Transaction, owner: bytes, week: str, week_start_ms: int) -> dict[str, Any]:
    """Return the changeable record of a group's week, remembering the week for its retention."""
    key = week_key(owner, week)
    if tx.get(key) is None:
        core = tx.edit(owner + SEPARATOR + b"core")
        core["weeks"] = {**core.get("weeks", {}), week: week_start_ms}
    return tx.edit(key, _new_week)  # type: ignore[no-any-return]


def _new_week() -> dict[str, Any]:
    return {"p": {}, "n": 0, "bn": 0, "bts": 0, "paid": [], "won": []}


def on_count(
    tx: Transaction, count: GroupCount, rules: CompiledRules, late: bool
) -> tuple[list[Grant], tuple[int, int] | None]:
    """Apply a partition's cumulative count; return the grants it makes and the group's new board score."""
    owner = count.owner()
    if _too_old(tx, owner, count.week_start_ms, rules.retention_ms):
        return [], None
    grants: list[Grant] = []
    for user, ts in count.joined:  # the members first: the count includes their interactions
        grants.extend(on_join(tx, GroupJoin(count.group, count.week, user, ts, count.week_start_ms), rules))
    current = tx.get(week_key(owner, count.week))
    source = str(count.source)
    before = current["p"].get(source) if current is not None else None
    if before is not None and before[0] >= count.n:
        return grants, None  # seen already (a replay)
    record = _week(tx, owner, count.week, count.week_start_ms)
    delta = count.n - (before[0] if before is not None else 0)
    record["p"] = {**record["p"], source: (count.n, max(count.last_ts, before[1] if before else 0))}
    record["n"] += delta
    score = None
    if not late:
        record["bn"] += delta
        record["bts"] = max(record["bts"], count.last_ts)
        score = (record["bn"], record["bts"])
    for challenge in _group_challenges(rules):
        if challenge.name not in record["paid"] and record["n"] >= challenge.threshold:
            record["paid"] = [*record["paid"], challenge.name]
            members = tx.get(members_key(owner, count.week)) or {}
            grants.extend(
                _grant(challenge, count.group, count.week, count.week_start_ms, user, rules)
                for user in sorted(members)
            )
    return grants, score


def on_join(tx: Transaction, join: GroupJoin, rules: CompiledRules) -> list[Grant]:
    """Add a member to the group's week; pay it what the week has crossed and titled already."""
    owner = join.owner()
    if _too_old(tx, owner, join.week_start_ms, rules.retention_ms):
        return []
    key = members_key(owner, join.week)
    members = tx.get(key)
    if members is not None and join.user in members:
        return []
    tx.edit(key)[join.user] = join.ts
    record = tx.get(week_key(owner, join.week))
    if record is None:
        record = _week(tx, owner, join.week, join.week_start_ms)
    grants = [
        _grant(challenge, join.group, join.week, join.week_start_ms, join.user, rules)
        for challenge in _group_challenges(rules)
        if challenge.name in record["paid"]
    ]
    end_ms = join.week_start_ms + WEEK_MS
    for board, title, version in record["won"]:
        grants.append(
            title_grant(board, title, join.user, join.week, join.week_start_ms, end_ms, version, join.group)
        )
    return grants


def _group_challenges(rules: CompiledRules) -> list[Challenge]:
    return [challenge for challenge in rules.challenges if challenge.owner == "group"]


def _grant(
    challenge: Challenge, group: str, week: str, start_ms: int, user: str, rules: CompiledRules
) -> Grant:
    return challenge_grant(challenge, user, group, week, start_ms, start_ms + WEEK_MS, rules.version)


def on_won(tx: Transaction, won: GroupWon) -> list[Grant]:
    """Record that the group won a board's week; title each of its members active that week."""
    owner = won.owner()
    current = tx.get(week_key(owner, won.week))
    if current is not None and any(entry[0] == won.board for entry in current["won"]):
        return []
    record = _week(tx, owner, won.week, won.week_start_ms)
    record["won"] = [*record["won"], [won.board, won.title, won.version]]
    end_ms = won.week_start_ms + WEEK_MS
    members = tx.get(members_key(owner, won.week)) or {}
    return [
        title_grant(won.board, won.title, user, won.week, won.week_start_ms, end_ms, won.version, won.group)
        for user in sorted(members)
    ]


def group_view(get: Any, owner: bytes, week: str, rules: CompiledRules) -> dict[str, Any] | None:
    """Return the public view of a group's week, or None when the group has no state for it."""
    record = get(week_key(owner, week))
    if record is None:
        return None
    members = get(members_key(owner, week)) or {}
    return {
        "week": week,
        "interactions": record["n"],
        "members": len(members),
        "member_ids": sorted(members)[:100],
        "challenges": [
            {
                "rule": c.name,
                "threshold": c.threshold,
                "points": c.points,
                "reached": c.name in record["paid"],
            }
            for c in _group_challenges(rules)
        ],
        "titles": [board for board, _title, _version in record["won"]],
    }
