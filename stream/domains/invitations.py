"""Name what the invitation rewards share: their messages, their awards, and what they tell the runtime.

An invitation lives in three places, joined through the internal topic with idempotent messages:

- the *invitee's* key (``<invitee>\\0iv``, beside the invitee's logins and messages): the lifecycle of
  the invitation, its deadlines, its parts (see stream/domains/invitee.py);
- the *inviter's* key (``<inviter>\\0iv+``): the credited registrations (tiers), the day's count (the
  daily limit), the invitees and their parts, the squad (see stream/domains/inviter.py);
- one *budget* key per month (``\\0v\\0<month>``), when the rules set a monthly budget.

A message names its step and the user it goes to; a step applied twice changes nothing the second time
(each side keeps the state of every invitee it has heard of). Award ids come from the invitee, the part
and the status, so an activation, an expiry or a revocation names the award it acts on without asking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.core.state import Transaction
from stream.engine.awards import (
    ACTIVATED,
    COUNTING_STATUSES,
    EXPIRED,
    PENDING,
    REVOKED,
    BadgeAward,
    PointAward,
    award_id,
)
from stream.engine.layout import CORE, SEPARATOR, team_of

BUDGET = b"\x00v\x00"

INVITER_RULE = "invite_inviter"
WELCOME_RULE = "invite_welcome"
SECOND_LEVEL_RULE = "invite_second_level"

# The four parts of an invitation's promise: the inviter's and the welcome reward, each in two halves.
INVITER_PARTS = ("i1", "i2")
WELCOME_PARTS = ("w1", "w2")
PARTS = INVITER_PARTS + WELCOME_PARTS
COUNTING = COUNTING_STATUSES

# What the funnel counts, per channel and registration day
INVITED, REGISTERED, HALF, FULL, RETAINED, FLAGGED, PAID = (
    "invited",
    "registered",
    "activated_half",
    "activated_full",
    "retained",
    "flagged",
    "points_paid",
)
STAGES = (INVITED, "verified", REGISTERED, "held", HALF, FULL, RETAINED, FLAGGED, "expired", PAID)


def user_team(tx: Transaction, user: str) -> str | None:
    """Return a user's team from its core record (None: no state, or no team known)."""
    core = tx.get(user.encode() + SEPARATOR + CORE)
    return None if core is None else team_of(core)


def budget_owner(month: str) -> bytes:
    """Return the owner key of a month's invitation budget."""
    return BUDGET + month.encode()


def part_rule(part: str) -> str:
    """Return the rule name of a part (the inviter's or the welcome reward)."""
    return INVITER_RULE if part in INVITER_PARTS else WELCOME_RULE


def part_award_id(invitee: str, part: str, status: str) -> str:
    """Return the id of a part's award in one status (pending, activated, expired, revoked)."""
    return award_id(part_rule(part), invitee, part, status)


def halves(points: int) -> tuple[int, int]:
    """Split a reward into its first half (rounded down) and the rest."""
    first = points // 2
    return first, points - first


@dataclass(slots=True)
class Invitation:
    """One step of an invitation sent to the key ``to`` (a user id; for ``reserve``: a month's budget)."""

    step: str
    to: str
    invitee: str
    body: dict[str, Any]

    def owner(self) -> bytes:
        return budget_owner(self.to) if self.step == "reserve" else self.to.encode()

    def to_record(self) -> dict[str, Any]:
        return {"iv": [self.step, self.to, self.invitee, self.body]}


def parse_invitation(body: Any) -> Invitation:
    """Return the invitation step of an ``iv`` envelope's body; raise ``ValueError``/``TypeError`` if malformed."""
    step, to, invitee, data = body
    if not isinstance(data, dict):
        raise TypeError("an invitation step's body must be a mapping")
    return Invitation(str(step), str(to), str(invitee), data)


@dataclass(slots=True)
class InviteOut:
    """What an invitation step did: awards by user, steps to send, funnel counts, and notes for metrics."""

    points: dict[str, list[PointAward]] = field(default_factory=dict)
    badges: dict[str, list[BadgeAward]] = field(default_factory=dict)
    messages: list[Invitation] = field(default_factory=list)
    funnel: list[tuple[str, str, str, int]] = field(default_factory=list)  # day, channel, stage, n
    rejected: list[tuple[str, str]] = field(default_factory=list)  # channel, reason
    budget: list[tuple[str, int, int]] = field(default_factory=list)  # month, promised, budget
    late: int = 0  # invitee activity that came after its window had been closed

    def award(self, award: PointAward) -> None:
        """Add a point award (to its user's list)."""
        self.points.setdefault(award.user_id, []).append(award)

    def badge(self, badge: BadgeAward) -> None:
        """Add a badge (to its user's list)."""
        self.badges.setdefault(badge.user_id, []).append(badge)

    def count(self, day: str, channel: str, stage: str, n: int = 1) -> None:
        """Count ``n`` into one stage of the funnel of a channel's registration day."""
        self.funnel.append((day, channel, stage, n))


@dataclass(slots=True, frozen=True)
class Terms:
    """What every award of one invitation shares: who, the channel, the registration, the version."""

    invitee: str
    inviter: str
    channel: str
    registered_ts: int
    event_id: str
    day: str  # the registration's day: the period every award of the invitation names
    version: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> Terms:
        """Return the terms kept in an invitation record (either side's)."""
        return cls(
            record["x"], record["by"], record["ch"], record["t"], record["eid"], record["day"], record["v"]
        )

    def fields(self) -> dict[str, Any]:
        """Return the terms as the fields of a record or a message body."""
        return {
            "x": self.invitee,
            "by": self.inviter,
            "ch": self.channel,
            "t": self.registered_ts,
            "eid": self.event_id,
            "day": self.day,
            "v": self.version,
        }


def part_award(
    terms: Terms,
    part: str,
    status: str,
    points: int,
    ts: int,
    team: str,
    reason: str,
    source: str | None = None,
) -> PointAward:
    """Build one status of one part of an invitation as a point award.

    ``activated`` names the pending award (``activates``); ``revoked`` names the activated one and takes
    its points back; ``expired`` keeps the points it never paid.
    """
    user = terms.inviter if part in INVITER_PARTS else terms.invitee
    award = PointAward(
        award_id=part_award_id(terms.invitee, part, status),
        user_id=user,
        team_id=team,
        points=-points if status == REVOKED else points,
        rule=part_rule(part),
        period=terms.day,
        source_event_id=source or terms.event_id,
        rules_version=terms.version,
        ts=ts,
        reason=reason,
        status=status,
    )
    if status == ACTIVATED:
        award.activates = part_award_id(terms.invitee, part, PENDING)
    elif status == REVOKED:
        award.revokes = part_award_id(terms.invitee, part, ACTIVATED)
    elif status == EXPIRED:
        award.expires = part_award_id(terms.invitee, part, PENDING)
    return award


def pending_awards(terms: Terms, amounts: dict[str, int], held: str | None, team: str) -> list[PointAward]:
    """Return the pending awards of the parts promised (``amounts``: part -> points; 0 pays nothing)."""
    why = HELD_REASONS.get(held or "", "promised at registration")
    return [
        part_award(
            terms, part, PENDING, points, terms.registered_ts, team, part_reason(terms, part, PENDING, why)
        )
        for part, points in amounts.items()
        if points
    ]


HELD_REASONS = {
    "daily_limit": "waits for an operator (daily limit)",
    "budget": "waits for an operator (budget)",
}

PART_NAMES = {
    "i1": "invitation reward, first half",
    "i2": "invitation reward, the rest",
    "w1": "welcome reward, first half",
    "w2": "welcome reward, the rest",
}


def part_reason(terms: Terms, part: str, status: str, why: str = "") -> str:
    """Say in one sentence why a part's award was made."""
    who = f"invitee {terms.invitee}" if part in INVITER_PARTS else f"invited by {terms.inviter}"
    text = f"{PART_NAMES[part]} ({who}, channel {terms.channel}): {status}"
    return f"{text}, {why}" if why else text
