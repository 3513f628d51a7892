"""Read the invitation state back for the query API: a user's invitations, what waits, the funnel, budgets.

Pure functions over decoded state (``get``: key -> value or None; ``scan``: prefix -> (key, value)
pairs), so the views in stream/runtime/web_invites.py stay thin and these can be tested on real state.
The layout they read is written by stream/domains/inviter.py (``<user>\\0ir``, ``<user>\\0ir:<invitee>``,
``<user>\\0is:<invitee>``), stream/domains/invitee.py (``<user>\\0iv``, a partition's ``held``) and
stream/domains/partition.py (a partition's funnel ``f:<day>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

from stream.domains.invitations import INVITER_PARTS, STAGES, WELCOME_PARTS, part_award_id, part_rule
from stream.domains.invitee import HELD, RECORD
from stream.domains.inviter import ENTRY, SECOND, SUMMARY
from stream.engine.awards import PENDING
from stream.engine.layout import SEPARATOR

Get = Callable[[bytes], Any]
Scan = Callable[[bytes], Iterable[tuple[bytes, Any]]]

FUNNEL = b"f:"  # in a partition's prefix: the funnel of one registration day (stream/domains/partition.py)
OPERATOR, LOGIN, ACTIVITY = "operator", "login", "activity"
CLOSED = "closed"  # an inviter's entry that waited for an operator and will never pay: its parts expired
FIRST_HALVES = ("i1", "w1")  # activate at the first login; the others on messages in groups


def parse_day(text: str | None) -> date | None:
    """Return the date of ``YYYY-MM-DD``, or None when absent or not such a date."""
    if text is None or len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _parts(parts: Mapping[str, list[Any]] | None, names: tuple[str, ...]) -> dict[str, Any]:
    """Return ``{part: {points, status}}`` of the parts named that the record holds."""
    parts = parts or {}
    return {name: {"points": parts[name][0], "status": parts[name][1]} for name in names if name in parts}


def _pending(
    invitee: str,
    channel: str,
    parts: Mapping[str, list[Any]] | None,
    names: tuple[str, ...],
    held: bool,
    deadline: Any,
) -> list[dict[str, Any]]:
    """Return the pending awards among ``names``: those promised with points and not settled yet."""
    out = []
    for name in names:
        points, status = (parts or {}).get(name, (0, None))
        if status != PENDING or not points:
            continue  # a part worth 0 points (a channel switched off) has no award
        out.append(
            {
                "award_id": part_award_id(invitee, name, PENDING),
                "rule": part_rule(name),
                "part": name,
                "points": points,
                "invitee": invitee,
                "channel": channel,
                "deadline": None if held else deadline,
                "waiting_for": OPERATOR if held else (LOGIN if name in FIRST_HALVES else ACTIVITY),
            }
        )
    return out


def user_invites(get: Get, scan: Scan, user: str) -> dict[str, Any]:
    """Return the ``invites`` object of ``/users/{id}``: pending awards, invitees, own invitation, bonuses.

    ``pending`` lists the user's own pending invitation awards: the inviter's halves (``i1``, ``i2``) of
    each invitee and the user's welcome halves (``w1``, ``w2``). While an operator has to approve the
    invitation its deadline is null (the window starts at the approval). An invitee's ``status`` is the
    inviter side's (checking, rejected, reserving, promised, held), or ``closed`` for one that waited
    for an operator and was rejected (or flagged) meanwhile.
    """
    p = user.encode() + SEPARATOR
    summary = get(p + SUMMARY) or {}
    pending: list[dict[str, Any]] = []
    invitees = []
    for key, entry in scan(p + ENTRY):
        invitee = key[len(p + ENTRY) :].decode()
        status = entry.get("st")
        parts = entry.get("parts") or {}
        if status == "held" and parts and all(part[1] != PENDING for part in parts.values()):
            status = CLOSED  # rejected by an operator, or flagged, while it waited: the entry keeps "held"
        held = status == "held"
        pending.extend(
            _pending(invitee, entry["ch"], entry.get("parts"), INVITER_PARTS, held, entry.get("dl"))
        )
        invitees.append(
            {
                "invitee": invitee,
                "channel": entry["ch"],
                "registered": entry["t"],
                "status": status,
                "credited_number": entry.get("n"),
                "parts": _parts(entry.get("parts"), INVITER_PARTS),
                "fully_activated": entry.get("full") == 1,
                "taken_back": entry.get("full") == -1,
                "reason": entry.get("why"),
            }
        )
    invitees.sort(key=lambda e: (e["registered"], e["invitee"]))
    invitation = None
    record = get(p + RECORD)
    if record is not None and record.get("st") != "stub":  # a stub: a fraud flag came before any registration
        held = record["st"] == "held"
        deadline = None if held else record.get("dl")
        pending.extend(_pending(user, record["ch"], record.get("parts"), WELCOME_PARTS, held, deadline))
        invitation = {
            "inviter": record["by"],
            "channel": record["ch"],
            "registered": record["t"],
            "status": record["st"],
            "deadline": deadline,
            "waiting_for_operator": record.get("held") if held else None,
            "parts": _parts(record.get("parts"), INVITER_PARTS + WELCOME_PARTS),
            "flagged": bool(record.get("fraud")),
            "retained": record.get("ret") == 1,
            "rejected": record.get("rejected") == 1,
        }
    second = [
        {"invitee": key[len(p + SECOND) :].decode(), "status": value["st"], "points": value["pts"]}
        for key, value in scan(p + SECOND)
    ]
    pending.sort(key=lambda a: (a["deadline"] is None, a["deadline"] or 0, a["invitee"], a["part"]))
    return {
        "pending": pending,
        "pending_points": sum(a["points"] for a in pending),
        "credited": summary.get("n", 0),
        "fully_activated": summary.get("full", 0),
        "invitees": invitees,
        "invitation": invitation,
        "second_level": second,
        "squad": summary.get("squad") == 1,
    }


def has_invites(get: Get, scan: Scan, user: str) -> bool:
    """Tell whether a user has any invitation state (as inviter, invitee or second-level receiver)."""
    p = user.encode() + SEPARATOR
    if get(p + SUMMARY) is not None or get(p + RECORD) is not None:
        return True
    return any(True for _ in scan(p + ENTRY)) or any(True for _ in scan(p + SECOND))


def held_key(partition_prefix: bytes) -> bytes:
    """Return the key of a partition's invitations that wait for an operator."""
    return partition_prefix + HELD


def pending_rows(held: Mapping[str, list[Any]] | None) -> list[dict[str, Any]]:
    """Return a partition's invitations that wait for an operator, one row each."""
    return [
        {
            "invitee": invitee,
            "inviter": entry[0],
            "channel": entry[1],
            "registered": entry[2],
            "reason": entry[3],
            "points": entry[4],
            "event_id": entry[5],
        }
        for invitee, entry in (held or {}).items()
    ]


def sort_pending(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return waiting invitations by registration time, then invitee."""
    return sorted(rows, key=lambda row: (row["registered"], row["invitee"]))


def local_funnel(scan: Scan, partition_prefix: bytes, first: date, last: date) -> dict[str, dict[str, int]]:
    """Return one partition's funnel of the registration days ``first`` .. ``last`` (inclusive), by channel."""
    prefix = partition_prefix + FUNNEL
    low, high = first.isoformat(), last.isoformat()
    out: dict[str, dict[str, int]] = {}
    for key, by_channel in scan(prefix):
        day = key[len(prefix) :].decode()
        if not low <= day <= high:
            continue
        add_funnel(out, by_channel)
    return out


def add_funnel(into: dict[str, dict[str, int]], funnel: Mapping[str, Mapping[str, int]]) -> None:
    """Add a funnel (channel -> stage -> n) into another."""
    for channel, stages in funnel.items():
        target = into.setdefault(channel, {})
        for stage, n in stages.items():
            target[stage] = target.get(stage, 0) + n


def funnel_view(funnel: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """Return every channel's funnel with every stage (0 when none), channels sorted, and a total."""
    channels = {
        channel: {stage: int(stages.get(stage, 0)) for stage in STAGES}
        for channel, stages in sorted(funnel.items())
    }
    total = {stage: sum(c[stage] for c in channels.values()) for stage in STAGES}
    return {"channels": channels, "total": total}


def budget_view(record: Mapping[str, Any] | None, month: str, budget: int | None) -> dict[str, Any]:
    """Return a month's invitation budget: the points promised against it, the registrations it took.

    ``reserved``: registrations whose points were reserved (an operator's approval reserves them too);
    ``refused``: registrations the budget sent to an operator that were not approved (yet).
    ``budget`` is None when the rules set none (then nothing is tracked: promised stays 0).
    """
    record = record or {"spent": 0, "who": {}}
    spent = int(record["spent"])
    who: Mapping[str, int] = record["who"]
    return {
        "month": month,
        "budget": budget,
        "promised": spent,
        "burnt_ratio": None if budget is None else (spent / budget if budget > 0 else 1.0),
        "reached": budget is not None and spent >= budget,
        "reserved": sum(1 for ok in who.values() if ok),
        "refused": sum(1 for ok in who.values() if not ok),
    }
