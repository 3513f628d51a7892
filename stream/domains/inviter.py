"""Run the inviter's side of invitations: tiers, the daily limit, the budget, the squad, the second level.

Keys of the inviter (``<user>\\0``):

- ``ir``: the summary: registrations credited (``n``, the tier counts them all, later flagged ones
  included), credited per day (the daily limit), fully activated invitees (the squad);
- ``ir:<invitee>``: one invitee's entry: the terms, its state (``checking``, ``rejected``,
  ``reserving``, ``promised``, ``held``), the inviter's two parts ``[points, status]``;
- ``is:<invitee>``: the second-level bonus paid to this user for an invitee of one of its invitees.

A month's budget is one key of its own (``\\0v\\0<month>``), the one place that sees every promise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from stream.core.state import Transaction
from stream.domains.invitations import (
    FULL,
    INVITED,
    INVITER_PARTS,
    PAID,
    REGISTERED,
    SECOND_LEVEL_RULE,
    Invitation,
    InviteOut,
    Terms,
    halves,
    part_award,
    part_reason,
    pending_awards,
    user_team,
)
from stream.domains.invitee import record_key as invitee_record_key
from stream.engine.awards import (
    ACTIVATED,
    EXPIRED,
    GRANTED,
    PENDING,
    REVOKED,
    BadgeAward,
    PointAward,
    award_id,
)
from stream.engine.layout import SEPARATOR
from stream.engine.periods import LIFETIME, Calendar
from stream.events import Invite
from stream.rules.invites import InviteRules

SUMMARY = b"ir"
ENTRY = b"ir:"
SECOND = b"is:"
TRANSITIONS = {PENDING: (ACTIVATED, EXPIRED), ACTIVATED: (REVOKED,)}


def entry_key(inviter: str, invitee: str) -> bytes:
    """Return the key of one invitee's entry on the inviter's side."""
    return inviter.encode() + SEPARATOR + ENTRY + invitee.encode()


def summary_key(inviter: str) -> bytes:
    """Return the key of an inviter's summary."""
    return inviter.encode() + SEPARATOR + SUMMARY


def on_event(
    tx: Transaction, event: Invite, rules: InviteRules, calendar: Calendar, version: str
) -> tuple[InviteOut, str | None]:
    """Apply an ``im.invites`` event on the inviter's key; return what it did and why it was ignored."""
    out = InviteOut()
    day = calendar.day_of(event.ts).name
    inviter, invitee = event.inviter_id, event.invitee_id
    if event.type == "invited":
        out.count(day, event.channel, INVITED)
        return out, None
    if event.type == "verified":
        out.count(day, event.channel, "verified")
        return out, None
    if event.type == "fraud_flagged":
        body = {"t": event.ts, "eid": event.event_id, "by": inviter}
        out.messages.append(Invitation("fraud", invitee, invitee, body))
        return out, None
    if not rules.enabled:
        return out, "invites_disabled"
    why = None
    if inviter == invitee:
        why = "self_invite"
    elif tx.get(entry_key(inviter, invitee)) is not None:
        why = "duplicate_registration"  # this inviter registered this invitee before
    if why is not None:
        out.rejected.append((event.channel, why))
        return out, why
    terms = Terms(invitee, inviter, event.channel, event.ts, event.event_id, day, version)
    summary = tx.edit(summary_key(inviter))
    seq = summary["seq"] = summary.get("seq", 0) + 1  # the order its verdicts are credited in
    summary["queue"] = {**summary.get("queue", {}), str(seq): invitee}
    tx.set(entry_key(inviter, invitee), {**terms.fields(), "st": "checking", "q": seq})
    body = {"by": inviter, "ch": event.channel, "t": event.ts, "eid": event.event_id}
    out.messages.append(Invitation("register", invitee, invitee, body))
    return out, None


def on_verdict(tx: Transaction, step: Invitation, rules_at: Callable[[int], InviteRules]) -> InviteOut:
    """Take the invitee side's verdict; credit the registrations whose turn has come, in order.

    Verdicts come back from the invitees' partitions in any order; registrations are credited (tier,
    daily limit, budget) in the order the inviter made them (``q``, the order of its own input), each
    once every earlier one has its verdict, so the tiers do not depend on which partition answers first.
    """
    out = InviteOut()
    key = entry_key(step.to, step.invitee)
    current = tx.get(key)
    if current is None or current["st"] != "checking" or current["eid"] != step.body["eid"]:
        return out  # a replay, or the verdict on another registration
    entry = tx.edit(key)
    entry["st"] = "decided"
    entry["ok"] = 1 if step.body.get("ok") else 0
    if not entry["ok"]:
        entry["why"] = step.body.get("why", "rejected")
    summary = tx.edit(summary_key(step.to))
    queue = dict(summary.get("queue", {}))
    turn = summary.get("next", 1)
    while str(turn) in queue:
        waiting_key = entry_key(step.to, queue[str(turn)])
        waiting = tx.get(waiting_key)
        if waiting is not None and waiting["st"] == "checking":
            break  # an earlier registration still waits for its verdict
        if waiting is not None and waiting["st"] == "decided":
            _credit(tx, summary, tx.edit(waiting_key), rules_at(waiting["t"]), out)
        del queue[str(turn)]
        turn += 1
    summary["queue"] = queue
    summary["next"] = turn
    return out


def _credit(
    tx: Transaction, summary: dict[str, Any], entry: dict[str, Any], rules: InviteRules, out: InviteOut
) -> None:
    """Credit one registration the invitee's side accepted (or note its rejection)."""
    terms = Terms.of(entry)
    if not entry.pop("ok"):
        entry["st"] = "rejected"
        out.rejected.append((terms.channel, entry["why"]))
        return
    n = summary["n"] = summary.get("n", 0) + 1
    days = {d: c for d, c in summary.get("days", {}).items() if d >= _days_ago(terms.day, 40)}
    days[terms.day] = days.get(terms.day, 0) + 1
    summary["days"] = days
    out.count(terms.day, terms.channel, REGISTERED)
    multiplier = rules.multiplier(terms.channel)
    inviter_points = math.floor(rules.tier_points(n) * multiplier)
    welcome_points = math.floor(rules.welcome_points * multiplier)
    entry["n"] = n
    entry["team"] = user_team(tx, terms.inviter) or "unknown"
    entry["amounts"] = [list(halves(inviter_points)), list(halves(welcome_points))]
    entry["dl"] = terms.registered_ts + rules.window_ms  # the halves' deadline (unless held)
    if days[terms.day] > rules.daily_limit:
        _promise(entry, terms, "daily_limit", out)
    elif rules.monthly_budget is not None and inviter_points + welcome_points:
        entry["st"] = "reserving"
        body = {"pts": inviter_points + welcome_points, "budget": rules.monthly_budget, "by": terms.inviter}
        out.messages.append(Invitation("reserve", terms.day[:7], terms.invitee, body))
    else:
        _promise(entry, terms, None, out)


def _days_ago(day: str, n: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=n)).isoformat()


def _promise(entry: dict[str, Any], terms: Terms, held: str | None, out: InviteOut) -> None:
    """Make the inviter's pending halves and send the promise to the invitee's side."""
    (i1, i2), (w1, w2) = entry["amounts"]
    entry["st"] = "held" if held else "promised"
    entry["parts"] = {"i1": [i1, PENDING], "i2": [i2, PENDING]}
    for award in pending_awards(terms, {"i1": i1, "i2": i2}, held, entry["team"]):
        out.award(award)
    body = {"i": [i1, i2], "w": [w1, w2], "held": held, "team": entry["team"]}
    out.messages.append(Invitation("promise", terms.invitee, terms.invitee, body))


def on_budget(tx: Transaction, step: Invitation) -> InviteOut:
    """Promise a registration the month's budget accepted, or hold it for an operator."""
    out = InviteOut()
    key = entry_key(step.to, step.invitee)
    current = tx.get(key)
    if current is None or current["st"] != "reserving":
        return out
    entry = tx.edit(key)
    _promise(entry, Terms.of(entry), None if step.body.get("ok") else "budget", out)
    return out


def on_reserve(tx: Transaction, owner: bytes, step: Invitation) -> InviteOut:
    """Reserve a registration's points in its month's budget; answer the inviter once per invitee."""
    out = InviteOut()
    body = step.body
    budget = tx.get(owner) or {"spent": 0, "who": {}}
    who: dict[str, int] = budget["who"]
    before = who.get(step.invitee)
    if before is not None and not (body.get("force") and before == 0):
        if not body.get("force"):
            out.messages.append(Invitation("budget", body["by"], step.invitee, {"ok": before}))
        return out
    ok = 1 if body.get("force") or budget["spent"] < body["budget"] else 0
    spent = budget["spent"] + (body["pts"] if ok else 0)
    tx.set(owner, {"spent": spent, "who": {**who, step.invitee: ok}})
    out.budget.append((step.to, spent, body["budget"]))
    if not body.get("force"):
        out.messages.append(Invitation("budget", body["by"], step.invitee, {"ok": ok}))
    return out


def on_settle(tx: Transaction, step: Invitation, rules: InviteRules) -> InviteOut:
    """Apply the invitee side's changes to the inviter's parts (the runtime books those that count)."""
    out = InviteOut()
    key = entry_key(step.to, step.invitee)
    current = tx.get(key)
    if current is None or "parts" not in current:
        return out
    entry = tx.edit(key)
    terms = Terms.of(entry)
    parts = dict(entry["parts"])
    for what, status, ts, source in step.body["s"]:
        if what in INVITER_PARTS:
            points, before = parts[what]
            if status not in TRANSITIONS.get(before, ()):
                if before == PENDING and status == REVOKED:
                    status = EXPIRED  # flagged before it counted: it lapses
                else:
                    continue  # a replay
            parts[what] = [points, status]
            if points:
                why = {ACTIVATED: "the invitee is active", EXPIRED: "lapsed", REVOKED: "flagged as fraud"}
                award = part_award(
                    terms,
                    what,
                    status,
                    points,
                    ts,
                    entry["team"],
                    part_reason(terms, what, status, why[status]),
                    source,
                )
                out.award(award)
                if status in (ACTIVATED, REVOKED):
                    out.count(terms.day, terms.channel, PAID, award.points)
        elif what == "approved":
            if entry["st"] == "held":
                entry["st"] = "promised"
                entry["dl"] = ts + rules.window_ms  # the window runs from the approval
        elif what == "full":
            _full(tx, entry, terms, status, ts, source, rules, out)
    entry["parts"] = parts
    return out


def _full(
    tx: Transaction,
    entry: dict[str, Any],
    terms: Terms,
    change: int,
    ts: int,
    source: str,
    rules: InviteRules,
    out: InviteOut,
) -> None:
    """Count an invitee fully activated (or taken back); the squad badge; the second level."""
    before = entry.get("full", 0)
    if change == before or (change == 1 and before == -1):
        return  # a replay, or activated again after a take-back (never)
    entry["full"] = change
    summary = tx.edit(summary_key(terms.inviter))
    if change == 1:
        # invitees that ever fully activated: a later fraud flag takes back points, not the squad, so
        # whether the badge is earned does not depend on the order flags and activations arrive in
        summary["full"] = summary.get("full", 0) + 1
    else:
        summary["taken_back"] = summary.get("taken_back", 0) + 1
    if change == 1:
        if summary["full"] >= rules.squad_size and not summary.get("squad"):
            summary["squad"] = 1
            out.badge(
                BadgeAward(
                    award_id=award_id("badge", terms.inviter, rules.squad_badge, LIFETIME),
                    user_id=terms.inviter,
                    team_id=entry["team"],
                    badge=rules.squad_badge,
                    kind="achievement",
                    source_event_id=terms.event_id,
                    rules_version=terms.version,
                    ts=ts,
                    period=LIFETIME,
                )
            )
        own = tx.get(invitee_record_key(terms.inviter))
        points = math.floor(rules.second_level_points * rules.multiplier(terms.channel))
        if own is not None and own["st"] in ("open", "final") and not own.get("fraud") and points:
            entry["z"] = own["by"]
            body = {"on": 1, "ts": ts, "pts": points, **terms.fields(), "src": terms.event_id}
            out.messages.append(Invitation("second", own["by"], terms.invitee, body))
    elif entry.get("z"):
        body = {"on": -1, "ts": ts, "pts": 0, **terms.fields(), "src": source}
        out.messages.append(Invitation("second", entry["z"], terms.invitee, body))


def on_second(tx: Transaction, step: Invitation) -> InviteOut:
    """Grant (or revoke) the second-level bonus for an invitee of one of this user's invitees."""
    out = InviteOut()
    body = step.body
    key = step.to.encode() + SEPARATOR + SECOND + step.invitee.encode()
    current = tx.get(key)
    terms = Terms.of(body)
    if body["on"] == 1:
        if current is not None:
            return out
        status, points, ident = GRANTED, body["pts"], award_id(SECOND_LEVEL_RULE, step.invitee, GRANTED)
        tx.set(key, {"st": GRANTED, "pts": points})
        revokes = None
        reason = f"second-level bonus: invitee {step.invitee} of {terms.inviter} fully activated"
    else:
        if current is None or current["st"] != GRANTED:
            return out
        status, points = REVOKED, -current["pts"]
        ident = award_id(SECOND_LEVEL_RULE, step.invitee, REVOKED)
        revokes = award_id(SECOND_LEVEL_RULE, step.invitee, GRANTED)
        tx.set(key, {"st": REVOKED, "pts": current["pts"]})
        reason = f"second-level bonus taken back: invitee {step.invitee} flagged as fraud"
    award = PointAward(
        award_id=ident,
        user_id=step.to,
        team_id=user_team(tx, step.to) or "unknown",
        points=points,
        rule=SECOND_LEVEL_RULE,
        period=terms.day,
        source_event_id=body["src"],
        rules_version=terms.version,
        ts=body["ts"],
        reason=reason,
        status=status,
        revokes=revokes,
    )
    out.award(award)
    out.count(terms.day, terms.channel, PAID, points)
    return out


__all__ = ["FULL", "entry_key", "on_budget", "on_event", "on_reserve", "on_second", "on_settle", "on_verdict"]
