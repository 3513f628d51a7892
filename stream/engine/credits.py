"""Carry effects of one user's event onto another user's state.

A thanks card, a quality mark and a counted like change the *receiver's* state, which lives on the
receiver's partition. The engine emits a Credit; the worker routes it, keyed by the receiver, through
an internal topic, and the engine applies it there. Credit ids are derived from the source event, so a
replayed credit is recognised and counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THANKS_RECEIVED = "thanks_received"
QUALITY_BONUS = "quality_bonus"
LIKE_RECEIVED = "like_received"
CREDIT_KINDS = (THANKS_RECEIVED, QUALITY_BONUS, LIKE_RECEIVED)


@dataclass(frozen=True, slots=True)
class Credit:
    """Something another user's event gives ``user_id``."""

    user_id: str
    kind: str
    from_user_id: str
    team_id: str  # the sender's team, used when the receiver's own team is not known
    source_event_id: str
    ts: int

    @property
    def event_id(self) -> str:
        """Return the id the receiver de-duplicates this credit by."""
        return f"{self.kind}:{self.source_event_id}"

    def to_record(self) -> dict[str, Any]:
        """Return the credit as a JSON-able mapping for the internal topic."""
        return {
            "user_id": self.user_id,
            "kind": self.kind,
            "from_user_id": self.from_user_id,
            "team_id": self.team_id,
            "source_event_id": self.source_event_id,
            "ts": self.ts,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Credit:
        """Rebuild a credit from its mapping; raise KeyError or ValueError when it is malformed."""
        kind = record["kind"]
        if kind not in CREDIT_KINDS:
            raise ValueError(f"unknown credit kind {kind!r}")
        return cls(
            user_id=str(record["user_id"]),
            kind=kind,
            from_user_id=str(record["from_user_id"]),
            team_id=str(record["team_id"]),
            source_event_id=str(record["source_event_id"]),
            ts=int(record["ts"]),
        )
