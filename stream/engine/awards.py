"""Build point awards and badges with deterministic ids.

An award id is a hash of what the award is for, never of when it was computed, so replaying the same
events yields the same ids and downstream consumers can de-duplicate. The rules version is not part
of the id: a replay under newer rules must not pay the same thing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

GRANTED = "granted"
PENDING = "pending"
ACTIVATED = "activated"
EXPIRED = "expired"
REVOKED = "revoked"
STATUSES = (GRANTED, PENDING, ACTIVATED, EXPIRED, REVOKED)
COUNTING_STATUSES = frozenset({GRANTED, ACTIVATED, REVOKED})  # what a balance sums


_AWARD_HASH = blake2b(digest_size=12)  # copied per id: cheaper than setting up a new hash (measured ~0.3 µs)


def award_id(*parts: str) -> str:
    """Return a stable 24-hex-digit id for the parts that identify an award."""
    h = _AWARD_HASH.copy()
    h.update("\x1f".join(parts).encode())
    return h.hexdigest()


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs ~6x (measured)
class PointAward:
    """One record of rewards.points."""

    award_id: str
    user_id: str
    team_id: str
    points: int
    rule: str
    period: str
    source_event_id: str
    rules_version: str
    ts: int
    reason: str = ""
    status: str = GRANTED
    revokes: str | None = None  # the award a revocation takes back
    activates: str | None = None  # the pending award an activation makes count
    expires: str | None = None  # the pending award an expiry lapses

    def to_record(self) -> dict[str, Any]:
        """Return the award in the wire format of rewards.points."""
        record: dict[str, Any] = {
            "award_id": self.award_id,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "points": self.points,
            "rule": self.rule,
            "status": self.status,
            "period": self.period,
            "source_event_id": self.source_event_id,
            "rules_version": self.rules_version,
            "reason": self.reason,
            "ts": self.ts,
        }
        if self.revokes is not None:
            record["revokes"] = self.revokes
        if self.activates is not None:
            record["activates"] = self.activates
        if self.expires is not None:
            record["expires"] = self.expires
        return record


@dataclass(slots=True, unsafe_hash=True)
class BadgeAward:
    """One record of rewards.badges."""

    award_id: str
    user_id: str
    team_id: str
    badge: str
    kind: str  # level | achievement | task | title
    source_event_id: str
    rules_version: str
    ts: int
    level: str | None = None
    period: str | None = None

    def to_record(self) -> dict[str, Any]:
        """Return the badge in the wire format of rewards.badges."""
        record: dict[str, Any] = {
            "award_id": self.award_id,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "badge": self.badge,
            "kind": self.kind,
            "source_event_id": self.source_event_id,
            "rules_version": self.rules_version,
            "ts": self.ts,
        }
        if self.level is not None:
            record["level"] = self.level
        if self.period is not None:
            record["period"] = self.period
        return record
