"""Dispatch invitation steps to the invitee's, the inviter's and the budget's functions, with their rules.

Every step of an invitation is scored by the rules version in effect at the registration's own time, so
a new version (a channel's multiplier set to 0, a new budget) applies to registrations from its
``effective_from`` on, and every replay decides the same way.
"""

from __future__ import annotations

from stream.core.state import Transaction
from stream.domains import invitee, inviter
from stream.domains.invitations import Invitation, InviteOut
from stream.domains.timers import Timers
from stream.engine.periods import Calendar
from stream.rules.invites import InviteRules
from stream.rules.versions import RuleBook


class InviteSteps:
    """Apply invitation steps within one partition's transaction."""

    def __init__(self, book: RuleBook, calendar: Calendar) -> None:
        self.book = book
        self.calendar = calendar

    def rules(self, ts: int) -> InviteRules:
        """Return the invitation rules in effect at ``ts``."""
        return self.book.at(ts).invites

    def on_step(self, tx: Transaction, step: Invitation, timers: Timers, held_prefix: bytes) -> InviteOut:
        """Apply a step that reached its owner's partition."""
        kind, body = step.step, step.body
        if kind == "register":
            version = self.book.at(body["t"]).version
            return invitee.on_register(tx, step, self.calendar, version)
        if kind == "verdict":
            return inviter.on_verdict(tx, step, self.rules)
        if kind == "reserve":
            return inviter.on_reserve(tx, step.owner(), step)
        if kind == "budget":
            return inviter.on_budget(tx, step)
        if kind == "promise":
            record = tx.get(invitee.record_key(step.invitee))
            rules = self.rules(record["t"]) if record is not None and "t" in record else self.rules(0)
            return invitee.on_promise(tx, step, rules, timers, held_prefix)
        if kind == "settle":
            entry = tx.get(inviter.entry_key(step.to, step.invitee))
            rules = self.rules(entry["t"]) if entry is not None else self.rules(0)
            return inviter.on_settle(tx, step, rules)
        if kind == "second":
            return inviter.on_second(tx, step)
        if kind == "fraud":
            record = tx.get(invitee.record_key(step.invitee))
            known = record is not None and "t" in record
            return invitee.on_fraud(tx, step, self.rules(record["t"]) if known else None, held_prefix)
        raise ValueError(f"unknown invitation step {kind!r}")

    def on_activity(self, tx: Transaction, user: str, ts: int) -> InviteOut:
        """Look at the open invitation of a user after one of the user's own events."""
        record = tx.get(invitee.record_key(user))
        if record is None or "t" not in record:
            return InviteOut()
        return invitee.on_activity(tx, user, ts, self.rules(record["t"]), self.calendar)

    def on_decision(
        self,
        tx: Transaction,
        user: str,
        approve: bool,
        ts: int,
        eid: str,
        timers: Timers,
        held_prefix: bytes,
    ) -> InviteOut | None:
        """Apply an operator's decision on a held invitation (None: nothing of that user waits)."""
        record = tx.get(invitee.record_key(user))
        if record is None or "t" not in record:
            return None
        rules = self.rules(record["t"])
        return invitee.on_decision(tx, user, approve, ts, eid, rules, timers, held_prefix)

    def on_timers(self, tx: Transaction, timers: Timers, now: int, held_prefix: bytes) -> list[InviteOut]:
        """Fire the partition's deadlines that its event time ``now`` has passed."""
        return [
            invitee.on_timer(tx, kind, user, due, held_prefix) for due, kind, user in timers.fire(tx, now)
        ]
