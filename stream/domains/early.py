"""Remember what every user did first: the activity an invitation's halves activate on.

The invitee's first login may reach its partition before the registration does, so each user keeps a
bounded log of its first activity from the start, whoever invites it later:

- in the core record, ``e`` = ``[first, login, cut, groups]``: the user's first event time, first login
  time, the time of the ``keep``-th earliest message once there are that many (None before), and the
  earliest ``keep_groups`` groups spoken in with the time each was first spoken in;
- in ``<user>\\0e``, the times of the ``keep`` earliest messages.

Once full, an event changes the log only if it is earlier than what it holds (a late arrival), so the
cost per event is a comparison. A registration is credited only to a user with no activity before it,
so the log holds every activity an invitation's window can see.
"""

from __future__ import annotations

import bisect
from typing import Any

from stream.core.state import Transaction
from stream.events import Login, Message

EARLY = b"e"


def needs_update(summary: list[Any] | None, event: Any, ts: int, keep_groups: int) -> bool:
    """Tell whether an event can change a user's early log (cheap: comparisons only)."""
    if summary is None or ts < summary[0]:
        return True
    kind = type(event)
    if kind is Login:
        return summary[1] is None or ts < summary[1]
    if kind is Message:
        cut, groups = summary[2], summary[3]
        if cut is None or ts < cut:
            return True
        group = event.group_id
        return group is not None and (len(groups) < keep_groups or ts < groups[-1][1])
    return False


def update(
    tx: Transaction,
    p: bytes,
    core: dict[str, Any],
    event: Any,
    ts: int,
    fresh: bool,
    keep: int,
    keep_groups: int,
) -> None:
    """Add an event to the user's early log (``fresh``: the user had no activity before this event)."""
    summary: list[Any] | None = core.get("e")
    # A user whose activity predates this log (state of an older version) counts as active since 0.
    summary = [ts if fresh else 0, None, None, []] if summary is None else list(summary)
    if ts < summary[0]:
        summary[0] = ts
    kind = type(event)
    if kind is Login:
        if summary[1] is None or ts < summary[1]:
            summary[1] = ts
    elif kind is Message:
        if keep and (summary[2] is None or ts < summary[2]):
            times: list[int] = list(tx.get(p + EARLY) or [])
            bisect.insort(times, ts)
            del times[keep:]
            tx.set(p + EARLY, times)
            summary[2] = times[-1] if len(times) >= keep else None
        group = event.group_id
        if group is not None and keep_groups:
            groups = [g for g in summary[3] if g[0] != group]
            first = min([ts] + [g[1] for g in summary[3] if g[0] == group])
            groups.append([group, first])
            groups.sort(key=lambda g: (g[1], g[0]))
            summary[3] = groups[:keep_groups]
    core["e"] = summary


def first_activity(core: dict[str, Any] | None) -> int | None:
    """Return the time of a user's first own event, or None when it has none."""
    if core is None:
        return None
    summary = core.get("e")
    if summary is not None:
        return int(summary[0])
    return 0 if core["wm"] else None  # active under an older version: since long ago


def first_login(core: dict[str, Any], since: int) -> int | None:
    """Return the time of the user's first login at or after ``since``, if the log knows it."""
    summary = core.get("e")
    if summary is None or summary[1] is None or summary[1] < since:
        return None
    return int(summary[1])


def messages_reached(
    tx: Transaction, p: bytes, core: dict[str, Any], since: int, messages: int, groups: int
) -> int | None:
    """Return when the user had sent ``messages`` messages in ``groups`` distinct groups since ``since``."""
    summary = core.get("e")
    if summary is None:
        return None
    reached = since
    if messages:
        times = [t for t in (tx.get(p + EARLY) or []) if t >= since]
        if len(times) < messages:
            return None
        reached = max(reached, times[messages - 1])
    if groups:
        firsts = [g[1] for g in summary[3] if g[1] >= since]
        if len(firsts) < groups:
            return None
        reached = max(reached, firsts[groups - 1])
    return reached
