"""Compute the invitation awards SPEC's seed 002 owes for the chaos traffic, independently of ``stream``.

A plain second implementation of SPEC's "Invitation rewards" over the whole record list:

- a registration is credited unless it is a self-invite, a second registration of its invitee, or the
  invitee was active before it; an inviter's credited registrations take tiers in the inviter's own
  order (Kafka keeps it: one key, one partition), beyond ``daily_limit`` a day they wait (no operator
  decides in the chaos traffic, so they stay pending);
- each reward is promised in two halves (the first rounded down); the first activates at the invitee's
  first login, the rest once it has sent ``full_messages`` messages in ``full_groups`` distinct groups,
  both within ``activation_days`` of registering (event time);
- a half not activated expires once the invitee's partition has seen an event more than the grace past
  the deadline: the model takes the latest event time of each partition over the whole traffic, which
  the workers reach too once everything is processed (they store each partition's event time, so a
  deadline already passed fires when it is scheduled; the invitees' own activity comes long before);
- a ``fraud_flagged`` within the fraud window takes back what counted (``revoked``) and expires what was
  pending (what the invitee reached after the flag never activates); the squad badge goes to an inviter
  with ``squad_size`` invitees that fully activated, flagged later or not.

The chaos traffic has no second level (its invitees never invite: the model refuses it), no budget and
no channel multipliers (the model refuses them), so none of those orders matter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

DAY_MS = 86_400_000


@dataclass
class _Registration:
    inviter: str
    invitee: str
    ts: int
    day: str


@dataclass
class InviteModel:
    """Collect the traffic's invitations and the activity they activate on."""

    spec: dict[str, Any]
    day_of: Any  # ts -> (local date, day name, week, month)
    registrations: list[_Registration] = field(default_factory=list)
    credited_invitees: set[str] = field(default_factory=set)
    first_ts: dict[str, int] = field(default_factory=dict)  # user -> earliest own event time
    logins: dict[str, int] = field(default_factory=dict)  # user -> first login time
    messages: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    groups: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    fraud: dict[str, int] = field(default_factory=dict)  # invitee -> earliest flag time
    user_ts: dict[str, int] = field(default_factory=dict)  # user -> latest own event time

    def __post_init__(self) -> None:
        if self.spec.get("channels") or self.spec.get("monthly_budget") is not None:
            raise ValueError("the chaos model knows no channel multipliers and no budget")
        if self.spec.get("default_multiplier", 1) != 1:
            raise ValueError("the chaos model knows no channel multipliers")

    def activity(self, user: str, source: str, e: dict[str, Any]) -> None:
        """Note one valid, first-seen event of ``user`` (the actor; an invite's inviter)."""
        ts = e["ts"]
        self.first_ts[user] = min(ts, self.first_ts.get(user, ts))
        self.user_ts[user] = max(ts, self.user_ts.get(user, ts))
        if source == "login":
            self.logins[user] = min(ts, self.logins.get(user, ts))
        elif source == "message":
            self.messages[user].append(ts)
            group = e.get("group_id")
            if group is not None:
                self.groups[user][group] = min(ts, self.groups[user].get(group, ts))

    def invite(self, e: dict[str, Any]) -> None:
        """Note one first-seen ``im.invites`` event, in the records' order."""
        inviter, invitee, ts = e["inviter_id"], e["invitee_id"], e["ts"]
        if e["type"] == "fraud_flagged":
            self.fraud[invitee] = min(ts, self.fraud.get(invitee, ts))
        elif e["type"] == "registered" and inviter != invitee:
            self.registrations.append(_Registration(inviter, invitee, ts, self.day_of(ts)[1]))

    def finish(
        self, partitions: int
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int], set[str]]:
        """Return (user, rule) -> points, (user, rule) -> award records, and the inviters with a squad."""
        spec = self.spec
        window = spec.get("activation_days", 7) * DAY_MS
        fraud_window = spec.get("fraud_window_days", 30) * DAY_MS
        grace = spec.get("grace_minutes", 60) * 60_000
        tiers = [(t["start"], t["points"]) for t in spec.get("tiers", [])]
        latest: dict[int, int] = defaultdict(int)  # partition -> latest event time
        for user, ts in self.user_ts.items():
            p = (murmur2(user.encode()) & 0x7FFFFFFF) % partitions
            latest[p] = max(latest[p], ts)
        points: dict[tuple[str, str], int] = defaultdict(int)
        awards: dict[tuple[str, str], int] = defaultdict(int)
        credited: dict[str, int] = defaultdict(int)
        per_day: dict[tuple[str, str], int] = defaultdict(int)
        inviters = {r.inviter for r in self.registrations}
        full_at: dict[str, list[tuple[int, int | None]]] = defaultdict(list)  # inviter -> (full ts, flag ts)
        for r in self.registrations:
            if r.invitee in self.credited_invitees or self.first_ts.get(r.invitee, r.ts) < r.ts:
                continue
            if r.invitee in inviters:
                raise ValueError("the chaos model knows no second level: invitees must not invite")
            self.credited_invitees.add(r.invitee)
            credited[r.inviter] += 1
            per_day[(r.inviter, r.day)] += 1
            tier = 0
            for start, tier_points in tiers:
                if credited[r.inviter] >= start:
                    tier = tier_points
            held = per_day[(r.inviter, r.day)] > spec.get("daily_limit", 20)
            welcome = spec.get("welcome_points", 10)
            parts = {
                ("invite_inviter", r.inviter, 1): tier // 2,
                ("invite_inviter", r.inviter, 2): tier - tier // 2,
                ("invite_welcome", r.invitee, 1): welcome // 2,
                ("invite_welcome", r.invitee, 2): welcome - welcome // 2,
            }
            deadline = r.ts + window
            flag = self.fraud.get(r.invitee)
            flagged = flag is not None and r.ts <= flag <= r.ts + fraud_window
            reached = {1: self._first_login(r), 2: self._full(r)}
            expired_by_time = (
                latest[(murmur2(r.invitee.encode()) & 0x7FFFFFFF) % partitions] > deadline + grace
            )
            full_ts = None
            if not held and all(reached[h] is not None and reached[h] < deadline for h in (1, 2)):
                full_ts = max(reached[1], reached[2])  # type: ignore[type-var]
            for (rule, user, half), amount in parts.items():
                if not amount:
                    continue
                awards[(user, rule)] += 1  # pending
                activated = not held and reached[half] is not None and reached[half] < deadline  # type: ignore[operator]
                if flagged and activated and reached[half] > flag:  # type: ignore[operator]
                    activated = False  # flagged before it was reached: nothing activates later
                if activated:
                    awards[(user, rule)] += 1
                    points[(user, rule)] += amount
                    if flagged:
                        awards[(user, rule)] += 1  # revoked
                        points[(user, rule)] -= amount
                elif flagged or (not held and expired_by_time):
                    awards[(user, rule)] += 1  # expired
            if full_ts is not None and not (flagged and flag < full_ts):  # type: ignore[operator]
                full_at[r.inviter].append((full_ts, flag if flagged else None))
        # invitees that ever fully activated: a later flag takes back points, not the squad
        need = spec.get("squad_size", 3)
        squads = {inviter for inviter, fulls in full_at.items() if len(fulls) >= need}
        return points, awards, squads

    def _first_login(self, r: _Registration) -> int | None:
        login = self.logins.get(r.invitee)
        return login if login is not None and login >= r.ts else None

    def _full(self, r: _Registration) -> int | None:
        need_messages = self.spec.get("full_messages", 10)
        need_groups = self.spec.get("full_groups", 2)
        times = sorted(t for t in self.messages.get(r.invitee, []) if t >= r.ts)
        firsts = sorted(t for t in self.groups.get(r.invitee, {}).values() if t >= r.ts)
        if len(times) < need_messages or len(firsts) < need_groups:
            return None
        reached = r.ts
        if need_messages:
            reached = max(reached, times[need_messages - 1])
        if need_groups:
            reached = max(reached, firsts[need_groups - 1])
        return reached
