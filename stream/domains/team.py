"""Keep a team's roster and months: the monthly challenge pays the roster at the moment of the crossing.

Roster changes come from the members' partitions (``RosterChange``, each with the user's roster version:
the team keeps the newest), counts from every partition (``TeamCount``, cumulative per partition: the
team keeps the largest). Both reach the team's key through one partition of the internal topic, so the
roster "at the moment the count is reached" is fixed by that log, and a replay decides the same.
"""

from __future__ import annotations

from typing import Any

from stream.core.state import Transaction
from stream.domains.grants import challenge_grant
from stream.domains.messages import Grant, RosterChange, TeamCount
from stream.engine.layout import SEPARATOR
from stream.rules.compiler import CompiledRules

ROSTER = b"r"


def roster_key(owner: bytes) -> bytes:
    """Return the key of a team's roster: user -> [roster version, joined_at or None when left]."""
    return owner + SEPARATOR + ROSTER


def month_key(owner: bytes, month: str) -> bytes:
    """Return the key of a team's month."""
    return owner + SEPARATOR + b"m:" + month.encode()


def on_roster(tx: Transaction, change: RosterChange) -> None:
    """Apply a roster change unless the team knows a newer one of that user."""
    key = roster_key(change.owner())
    roster = tx.get(key)
    before = roster.get(change.user) if roster is not None else None
    if before is not None and before[0] >= change.version:
        return
    tx.edit(key)[change.user] = [change.version, change.joined_at]


def on_count(tx: Transaction, count: TeamCount, rules: CompiledRules, month_end_ms: int) -> list[Grant]:
    """Apply a partition's cumulative count of the month; pay the roster when a challenge is crossed."""
    owner = count.owner()
    key = month_key(owner, count.month)
    current = tx.get(key)
    source = str(count.source)
    if current is not None and current["p"].get(source, 0) >= count.n:
        return []
    record = tx.edit(key, _new_month)
    record["n"] += count.n - record["p"].get(source, 0)
    record["p"] = {**record["p"], source: count.n}
    grants: list[Grant] = []
    for challenge in rules.challenges:
        if challenge.owner != "team" or challenge.name in record["paid"] or record["n"] < challenge.threshold:
            continue
        record["paid"] = [*record["paid"], challenge.name]
        roster = tx.get(roster_key(owner)) or {}
        members = sorted(user for user, (_v, joined) in roster.items() if joined is not None)
        record["payees"] = {**record.get("payees", {}), challenge.name: len(members)}
        grants.extend(
            challenge_grant(
                challenge, user, count.team, count.month, count.month_start_ms, month_end_ms, rules.version
            )
            for user in members
        )
    return grants


def _new_month() -> dict[str, Any]:
    return {"n": 0, "p": {}, "paid": []}


def team_view(get: Any, owner: bytes, month: str, rules: CompiledRules) -> dict[str, Any] | None:
    """Return the public view of a team's month, or None when the team has no state at all."""
    record = get(month_key(owner, month))
    roster = get(roster_key(owner))
    if record is None and roster is None:
        return None
    record = record or _new_month()
    return {
        "month": month,
        "messages": record["n"],
        "roster": sorted(user for user, (_v, joined) in (roster or {}).items() if joined is not None),
        "challenges": [
            {
                "rule": c.name,
                "threshold": c.threshold,
                "points": c.points,
                "reached": c.name in record["paid"],
                "paid_members": record.get("payees", {}).get(c.name),
            }
            for c in rules.challenges
            if c.owner == "team"
        ],
    }
