"""Turn raw events into the facts that count: the anti-gaming stage, in code.

What fails a check is no fact at all, so it counts toward no rule, counter, task, achievement or board:
self-likes, likes from one user to the same user beyond the daily pair limit, self-thanks, self-marks,
groups created without inviting anyone. A fact with a target user (likes, thanks cards, quality marks)
also becomes a ``Credit``: the target's side of the fact, routed to the target's partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.engine.credits import Credit
from stream.engine.layout import PAIR
from stream.events import Activity, Event, Like, Login, Message

ACTOR = "actor"
TARGET = "target"


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs ~6x (measured)
class Fact:
    """Something that counts, seen from one side: the actor's or the target user's."""

    name: str
    side: str
    fields: dict[str, Any]


@dataclass(slots=True)
class Facts:
    """What the stage made of one event: facts for its user, credits for others, or why nothing."""

    facts: list[Fact]
    credits: list[Credit]
    ignored: str | None = None


def _ignored(reason: str) -> Facts:
    return Facts([], [], reason)


def _credit(event: Like | Activity, fact: str, target: str, group_id: str | None = None) -> Credit:
    return Credit(target, fact, event.user_id, event.team_id, event.event_id, event.ts, group_id)


def make_facts(
    event: Event, day_record: dict[str, Any] | None, pair_limit: int, group_min_invited: int
) -> Facts:
    """Return the facts of one of the user's own events.

    ``day_record`` is the actor's record of the event's day, changeable: the per-pair like counts live there.
    """
    if isinstance(event, Message):
        reply = event.reply_to_user_id is not None and event.reply_to_user_id != event.user_id
        fields = {"kind": event.kind, "group_id": event.group_id, "reply": reply}
        return Facts([Fact("message", ACTOR, fields)], [])
    if isinstance(event, Like):
        target = event.target_user_id
        if target == event.user_id:
            return _ignored("self_like")
        assert day_record is not None, "a like needs its day's record"
        entry = PAIR + target
        given = day_record.get(entry, 0)
        if given >= pair_limit:
            return _ignored("like_pair_limit")
        day_record[entry] = given + 1
        fields = {"group_id": event.group_id}
        return Facts([Fact("like", ACTOR, fields)], [_credit(event, "like", target, event.group_id)])
    if isinstance(event, Login):
        return Facts([Fact("login", ACTOR, {})], [])
    if isinstance(event, Activity):
        kind = event.type
        if kind in ("thanks_card", "quality_marked"):
            marked = event.target_user_id
            if marked is None or marked == event.user_id:
                return _ignored("self_" + kind)
            return Facts([Fact(kind, ACTOR, {})], [_credit(event, kind, marked)])
        if kind == "group_created":
            if (event.invited_count or 0) < group_min_invited:
                return _ignored("group_without_members")
            return Facts([Fact(kind, ACTOR, {"group_id": event.group_id})], [])
        return Facts([Fact(kind, ACTOR, {})], [])  # vote, feed_view
    raise TypeError(f"no facts for {type(event).__name__}")


def credit_fact(credit: Credit) -> Fact:
    """Return the target's side of a routed fact."""
    fields = {"group_id": credit.group_id} if credit.kind == "like" else {}
    return Fact(credit.kind, TARGET, fields)
