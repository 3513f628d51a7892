"""Run an invitation's lifecycle on the invitee's key, beside the invitee's own logins and messages.

The record ``<invitee>\\0iv`` holds the invitation's terms and state:

- ``credited``: the registration passed the invitee's checks (no earlier registration, no activity
  before it); the inviter's side decides the amounts and sends the ``promise``;
- ``held``: promised, waiting for an operator (daily limit or budget): nothing activates until approved;
- ``open``: its halves activate on the invitee's activity within the window (``start`` .. ``dl``); when
  the partition's event time passes the deadline what has not activated expires (``shut``);
- ``final``: past the fraud window, rejected or flagged; nothing changes any more.

Each part (``i1``, ``i2``: the inviter's halves; ``w1``, ``w2``: the welcome halves) is ``[points, status]``.
The welcome parts are this user's awards, made here; the inviter's parts are settled by a message to the
inviter's key, which makes its awards. Every step is idempotent: it acts only on the state it expects.
"""

from __future__ import annotations

from typing import Any

from stream.core.state import Transaction
from stream.domains import early
from stream.domains.invitations import (
    FLAGGED,
    FULL,
    HALF,
    INVITER_PARTS,
    PAID,
    PARTS,
    RETAINED,
    WELCOME_PARTS,
    Invitation,
    InviteOut,
    Terms,
    part_award,
    part_reason,
    pending_awards,
    user_team,
)
from stream.domains.timers import Timers
from stream.engine.awards import ACTIVATED, EXPIRED, PENDING, REVOKED
from stream.engine.layout import CORE, SEPARATOR, new_core
from stream.engine.periods import Calendar
from stream.rules.invites import InviteRules

RECORD = b"iv"
HELD = b"held"  # in a partition's prefix: the invitations of its invitees that wait for an operator
DEADLINE, FINAL = "dl", "fd"  # timer kinds: the activation window's end, the fraud window's end
HALVES = ((1, ("i1", "w1")), (2, ("i2", "w2")))


def record_key(user: str) -> bytes:
    """Return the key of a user's invitation record (as the invitee)."""
    return user.encode() + SEPARATOR + RECORD


def _core(tx: Transaction, user: str) -> dict[str, Any] | None:
    core: dict[str, Any] | None = tx.get(user.encode() + SEPARATOR + CORE)
    return core


def on_register(tx: Transaction, step: Invitation, calendar: Calendar, version: str) -> InviteOut:
    """Check a registration against the invitee: a second registration or an active user earns nothing."""
    body, invitee = step.body, step.invitee
    out = InviteOut()
    key = record_key(invitee)
    record = tx.get(key)
    verdict: dict[str, Any] = {"by": body["by"], "eid": body["eid"]}
    if record is not None and record["st"] != "stub":
        if record["by"] == body["by"] and record["eid"] == body["eid"]:
            verdict["ok"] = 1  # a replay: say it again (the inviter's side acts once)
        else:
            verdict["ok"], verdict["why"] = 0, "duplicate_registration"
    else:
        first = early.first_activity(_core(tx, invitee))
        if first is not None and first < body["t"]:
            verdict["ok"], verdict["why"] = 0, "already_registered"
        else:
            day = calendar.day_of(body["t"]).name
            terms = Terms(invitee, body["by"], body["ch"], body["t"], body["eid"], day, version)
            fraud = record.get("fraud") if record is not None else None
            tx.set(key, {**terms.fields(), "st": "credited", "fraud": fraud})
            verdict["ok"] = 1
    out.messages.append(Invitation("verdict", body["by"], invitee, verdict))
    return out


def on_promise(
    tx: Transaction, step: Invitation, rules: InviteRules, timers: Timers, held_prefix: bytes
) -> InviteOut:
    """Make the welcome reward's pending halves; open the window, or wait for an operator."""
    out = InviteOut()
    key = record_key(step.invitee)
    current = tx.get(key)
    if current is None or current["st"] != "credited":
        return out  # a replay
    record = tx.edit(key)
    body = step.body
    terms = Terms.of(record)
    team = user_team(tx, terms.invitee) or body.get("team") or "unknown"
    record["team"] = team
    amounts = {"i1": body["i"][0], "i2": body["i"][1], "w1": body["w"][0], "w2": body["w"][1]}
    record["parts"] = {part: [amounts[part], PENDING] for part in PARTS}
    held = body.get("held")
    for award in pending_awards(terms, {part: amounts[part] for part in WELCOME_PARTS}, held, team):
        out.award(award)
    timers.schedule(tx, terms.registered_ts + rules.fraud_window_ms + rules.grace_ms, FINAL, terms.invitee)
    fraud = record.get("fraud")
    if fraud and not terms.registered_ts <= fraud[0] <= terms.registered_ts + rules.fraud_window_ms:
        record["fraud"] = fraud = None  # flagged before it registered, or after the window: not this one
    if fraud:
        # flagged before the promise reached this key: what the invitee had reached before the flag
        # (by event time) activates first, so that the order of arrival does not matter; then all goes
        out.count(terms.day, terms.channel, FLAGGED)
        if not held:
            _open(tx, record, terms, terms.registered_ts, rules, timers, out)
        _take_back(tx, record, terms, fraud[0], fraud[1], out, held_prefix)
    elif held:
        record["st"] = "held"
        record["held"] = held
        _hold(tx, held_prefix, terms, held, sum(amounts.values()))
        out.count(terms.day, terms.channel, "held")
    else:
        _open(tx, record, terms, terms.registered_ts, rules, timers, out)
    return out


def _open(
    tx: Transaction,
    record: dict[str, Any],
    terms: Terms,
    start: int,
    rules: InviteRules,
    timers: Timers,
    out: InviteOut,
) -> None:
    """Open the activation window at ``start``; activate what the invitee's activity already earned."""
    record["st"] = "open"
    record["start"] = start
    record["dl"] = start + rules.window_ms
    timers.schedule(tx, record["dl"] + rules.grace_ms, DEADLINE, terms.invitee)
    core = tx.edit(terms.invitee.encode() + SEPARATOR + CORE, new_core)
    core["iv"] = 1  # the invitee's events now look at this record
    _evaluate(tx, record, terms, core, rules, out)


def _evaluate(
    tx: Transaction,
    record: dict[str, Any],
    terms: Terms,
    core: dict[str, Any],
    rules: InviteRules,
    out: InviteOut,
) -> None:
    """Activate the halves whose condition the invitee's activity met within the window."""
    if record["st"] != "open" or record.get("shut"):
        return
    parts = record["parts"]
    p = terms.invitee.encode() + SEPARATOR
    start, deadline, since = record["start"], record["dl"], terms.registered_ts
    settled: list[list[Any]] = []
    for half, names in HALVES:
        if parts[names[0]][1] != PENDING:
            continue
        if half == 1:
            reached = early.first_login(core, since)
        else:
            reached = early.messages_reached(tx, p, core, since, rules.full_messages, rules.full_groups)
        if reached is None or reached >= deadline:
            continue
        fraud = record.get("fraud")
        if fraud and reached > fraud[0]:
            continue  # reached only after the flag: nothing activates later
        at = max(reached, start)
        why = "the invitee logged in" if half == 1 else "the invitee is active in groups"
        _settle(record, terms, names, ACTIVATED, at, terms.event_id, why, out, settled)
        out.count(terms.day, terms.channel, HALF)
    parts = record["parts"]  # replaced by _settle
    if parts["i2"][1] == ACTIVATED and parts["i1"][1] == ACTIVATED and not record.get("full"):
        record["full"] = 1
        out.count(terms.day, terms.channel, FULL)
        ts = max(part_ts for part_ts in record["at"].values())
        settled.append(["full", 1, ts, terms.event_id])
    if settled:
        out.messages.append(Invitation("settle", terms.inviter, terms.invitee, {"s": settled}))


def _settle(
    record: dict[str, Any],
    terms: Terms,
    names: tuple[str, ...],
    status: str,
    ts: int,
    source: str,
    why: str,
    out: InviteOut,
    settled: list[list[Any]],
) -> None:
    """Move parts to ``status``: the welcome ones as awards here, the inviter's in a settle message."""
    parts = dict(record["parts"])
    at = dict(record.get("at", {}))
    for part in names:
        points = parts[part][0]
        parts[part] = [points, status]
        if status == ACTIVATED:
            at[part] = ts
        if part in INVITER_PARTS:
            settled.append([part, status, ts, source])
            continue
        if points:
            reason = part_reason(terms, part, status, why)
            out.award(part_award(terms, part, status, points, ts, record["team"], reason, source))
            if status in (ACTIVATED, REVOKED):
                out.count(terms.day, terms.channel, PAID, points if status == ACTIVATED else -points)
    record["parts"] = parts
    record["at"] = at


def on_activity(tx: Transaction, user: str, ts: int, rules: InviteRules, calendar: Calendar) -> InviteOut:
    """Look at an open invitation after one of the invitee's own events: activations, retention."""
    out = InviteOut()
    key = record_key(user)
    current = tx.get(key)
    if current is None or current["st"] != "open":
        return out
    terms = Terms.of(current)
    retained = (
        not current.get("ret")
        and calendar.day_of(ts).ordinal - calendar.day_of(terms.registered_ts).ordinal >= rules.retention_day
    )
    pending = any(current["parts"][part][1] == PENDING for part in PARTS) and not current.get("shut")
    if current.get("shut") and ts < current["dl"] and ts >= current["start"]:
        out.late += 1  # it would have counted, but the window's end has fired already
    if not retained and not pending:
        return out
    record = tx.edit(key)
    if retained:
        record["ret"] = 1
        out.count(terms.day, terms.channel, RETAINED)
    core = tx.get(user.encode() + SEPARATOR + CORE)
    _evaluate(tx, record, terms, core, rules, out)
    return out


def on_timer(tx: Transaction, kind: str, user: str, due: int, held_prefix: bytes) -> InviteOut:
    """Fire a deadline: expire what has not activated, or end the fraud window."""
    out = InviteOut()
    key = record_key(user)
    current = tx.get(key)
    if current is None or current["st"] in ("final", "stub", "credited"):
        return out
    record = tx.edit(key)
    terms = Terms.of(record)
    if kind == DEADLINE:
        if record["st"] != "open" or record.get("shut"):
            return out
        record["shut"] = 1
        _expire_pending(record, terms, record["dl"], terms.event_id, "not activated in time", out)
        if record.get("fp"):  # the fraud window ended first (a late approval)
            record["st"] = "final"
            _close(tx, user)
    elif kind == FINAL:
        if record["st"] != "open" or not record.get("shut"):
            record["fp"] = 1  # still waiting or open: final once its own window ends
            return out
        record["st"] = "final"
        _close(tx, user)
    return out


def _expire_pending(
    record: dict[str, Any], terms: Terms, ts: int, source: str, why: str, out: InviteOut
) -> None:
    settled: list[list[Any]] = []
    pending = tuple(part for part in PARTS if record["parts"][part][1] == PENDING)
    if pending:
        _settle(record, terms, pending, EXPIRED, ts, source, why, out, settled)
        out.count(terms.day, terms.channel, "expired", len([p for p in pending if record["parts"][p][0]]))
    if settled:
        out.messages.append(Invitation("settle", terms.inviter, terms.invitee, {"s": settled}))


def _close(tx: Transaction, user: str) -> None:
    """Stop looking at the invitation on the invitee's events."""
    core_key = user.encode() + SEPARATOR + CORE
    if (tx.get(core_key) or {}).get("iv"):
        del tx.edit(core_key)["iv"]


def on_fraud(tx: Transaction, step: Invitation, rules: InviteRules | None, held_prefix: bytes) -> InviteOut:
    """Take back everything an invitation earned, if flagged within the fraud window of its registration."""
    out = InviteOut()
    body = step.body
    key = record_key(step.invitee)
    current = tx.get(key)
    if current is None or current["st"] == "stub":
        if current is None:
            tx.set(key, {"st": "stub", "fraud": [body["t"], body["eid"]]})
        return out  # applied when the registration arrives
    if current.get("fraud") or (current["st"] == "final" and current.get("rejected")):
        return out
    if rules is None or not current["t"] <= body["t"] <= current["t"] + rules.fraud_window_ms:
        out.rejected.append((current["ch"], "fraud_outside_window"))
        return out
    record = tx.edit(key)
    record["fraud"] = [body["t"], body["eid"]]
    terms = Terms.of(record)
    if record["st"] == "credited":
        return out  # the promise is still on its way: taken back when it arrives
    out.count(terms.day, terms.channel, FLAGGED)
    _take_back(tx, record, terms, body["t"], body["eid"], out, held_prefix)
    return out


def _take_back(
    tx: Transaction,
    record: dict[str, Any],
    terms: Terms,
    ts: int,
    eid: str,
    out: InviteOut,
    held_prefix: bytes,
) -> None:
    """Revoke the parts that counted and expire the pending ones; close the invitation."""
    settled: list[list[Any]] = []
    counted = tuple(part for part in PARTS if record["parts"][part][1] == ACTIVATED)
    pending = tuple(part for part in PARTS if record["parts"][part][1] == PENDING)
    if counted:
        _settle(record, terms, counted, REVOKED, ts, eid, "flagged as fraud", out, settled)
    if pending:
        _settle(record, terms, pending, EXPIRED, ts, eid, "flagged as fraud", out, settled)
    if record.get("full"):
        settled.append(["full", -1, ts, eid])
    if settled:
        out.messages.append(Invitation("settle", terms.inviter, terms.invitee, {"s": settled}))
    if record["st"] == "held":
        _release(tx, held_prefix, terms.invitee)
    record["st"] = "final"
    _close(tx, terms.invitee)


def on_decision(
    tx: Transaction,
    invitee: str,
    approve: bool,
    ts: int,
    eid: str,
    rules: InviteRules,
    timers: Timers,
    held_prefix: bytes,
) -> InviteOut | None:
    """Apply an operator's decision on a held invitation (None: nothing waits for one)."""
    key = record_key(invitee)
    current = tx.get(key)
    if current is None or current["st"] != "held":
        return None
    out = InviteOut()
    record = tx.edit(key)
    terms = Terms.of(record)
    _release(tx, held_prefix, invitee)
    record.pop("held", None)
    if approve:
        out.messages.append(Invitation("settle", terms.inviter, invitee, {"s": [["approved", 1, ts, eid]]}))
        if rules.monthly_budget is not None:
            points = sum(part[0] for part in record["parts"].values())
            body = {"pts": points, "force": 1, "budget": rules.monthly_budget, "by": terms.inviter}
            month = terms.day[:7]
            out.messages.append(Invitation("reserve", month, invitee, body))
        _open(tx, record, terms, ts, rules, timers, out)
    else:
        record["rejected"] = 1
        _expire_pending(record, terms, ts, eid, "rejected by an operator", out)
        record["st"] = "final"
    return out


def _hold(tx: Transaction, prefix: bytes, terms: Terms, reason: str, points: int) -> None:
    held = tx.edit(prefix + HELD)
    held[terms.invitee] = [terms.inviter, terms.channel, terms.registered_ts, reason, points, terms.event_id]


def _release(tx: Transaction, prefix: bytes, invitee: str) -> None:
    if invitee in (tx.get(prefix + HELD) or {}):
        del tx.edit(prefix + HELD)[invitee]


def held(tx: Transaction, prefix: bytes) -> dict[str, list[Any]]:
    """Return the invitations of a partition's invitees that wait for an operator."""
    value: dict[str, list[Any]] = tx.get(prefix + HELD) or {}
    return value
