"""Carry the target's side of a fact onto the target user's state.

A like, a thanks card or a quality mark changes the *target's* state, which lives on the target's
partition. The fact stage emits a Credit; the worker routes it, keyed by the target, through an internal
topic, and the engine applies it there as the fact seen from the target's side (``receiver: target``).
Credit ids are derived from the source event, so a replayed credit is recognised and counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CREDIT_KINDS = ("like", "thanks_card", "quality_marked")
# Credits written by format-1 workers named the receiver's counter; they may still be in flight.
_LEGACY_KINDS = {"like_received": "like", "thanks_received": "thanks_card", "quality_bonus": "quality_marked"}


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs ~6x (measured)
class Credit:
    """The target's side of one fact: ``from_user_id``'s event made ``user_id`` the target of ``kind``."""

    user_id: str
    kind: str  # the fact: like | thanks_card | quality_marked
    from_user_id: str
    team_id: str  # the sender's team: an award's team when the receiver's own is not known (never stored)
    source_event_id: str
    ts: int
    group_id: str | None = None
    source: int = -1  # the partition that made it (-1: unknown, from an older worker)

    @property
    def event_id(self) -> str:
        """Return the id the receiver de-duplicates this credit by."""
        return f"{self.kind}:{self.source_event_id}"

    def to_record(self) -> dict[str, Any]:
        """Return the credit as a JSON-able mapping for the internal topic."""
        record = {
            "user_id": self.user_id,
            "kind": self.kind,
            "from_user_id": self.from_user_id,
            "team_id": self.team_id,
            "source_event_id": self.source_event_id,
            "ts": self.ts,
        }
        if self.group_id is not None:
            record["group_id"] = self.group_id
        if self.source >= 0:
            record["sp"] = self.source
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Credit:
        """Rebuild a credit from its mapping; raise KeyError or ValueError when it is malformed."""
        kind = record["kind"]
        kind = _LEGACY_KINDS.get(kind, kind)
        if kind not in CREDIT_KINDS:
            raise ValueError(f"unknown credit kind {kind!r}")
        group = record.get("group_id")
        return cls(
            user_id=str(record["user_id"]),
            kind=kind,
            from_user_id=str(record["from_user_id"]),
            team_id=str(record["team_id"]),
            source_event_id=str(record["source_event_id"]),
            ts=int(record["ts"]),
            group_id=None if group is None else str(group),
            source=int(record.get("sp", -1)),
        )
