"""Build the valid input of a fault: synthetic traffic, re-deliveries and hand-picked edge cases.

The bulk comes from ``stream.feed.generate`` (Zipf-distributed users over 8 past days). On top: exact
re-deliveries of ~2% of the events, later in the stream, and a few users whose events sit on the edges
the rules care about (local midnight and the ISO week boundary in the rules' time zone, daily caps and
the like-pair limit across midnight, late events, self-thanks, self-marks and self-replies, groups with
no invitee, credits to a user who never acted, and three groups on the edge of the group weekly
challenge's 500 interactions: one reaching exactly 500 with counted likes and a last member joining late
in the week, one at 499 plus likes that count for nothing (a self-like, likes past the pair limit), one at
499 in its week with more just before and after the week). No expected result is written here: the
model computes it from these records like from any others.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from stream import feed

Record = tuple[str, str, Any]
DAY_MS = 86_400_000
USERS = 300
DUPLICATE_SHARE = 0.02
INVITE_SHARE = 0.02  # invitation traffic on top (registrations of new users who then log in and speak)


def traffic(n: int, seed: int, timezone: str = "Asia/Shanghai") -> list[Record]:
    """Return the roster, ``n`` synthetic events over 8 past days with re-deliveries, and the edge cases."""
    now = int(time.time() * 1000)
    start = now - 9 * DAY_MS
    records = list(
        feed.generate(n, users=USERS, seed=seed, start_ms=start, span_ms=8 * DAY_MS, invites=INVITE_SHARE)
    )
    rng = random.Random(seed)
    placed = [(float(i), r) for i, r in enumerate(records)]
    for i, r in enumerate(records):
        if r[0] != "member" and rng.random() < DUPLICATE_SHARE:
            placed.append((i + rng.uniform(1, 3000), r))  # the same record again, later in the stream
    edges = edge_cases(now, seed, timezone)
    slots = sorted(rng.uniform(0, len(records)) for _ in edges)  # spread out, in their own order
    placed += zip(slots, edges, strict=True)
    placed.sort(key=lambda p: p[0])
    return [r for _, r in placed]


class _Edges:
    """Collect edge-case events with unique ids."""

    def __init__(self, seed: int) -> None:
        self.records: list[Record] = []
        self.prefix = f"edge{seed}-"
        self.n = 0

    def add(self, source: str, user: str, ts: int, **fields: Any) -> dict[str, Any]:
        self.n += 1
        value = {
            "event_id": f"{self.prefix}{self.n}",
            "user_id": user,
            "team_id": "tedge",
            "ts": ts,
            **fields,
        }
        self.records.append((source, user, value))
        return value

    def again(self, value: dict[str, Any], source: str) -> None:
        self.records.append((source, value["user_id"], dict(value)))


def edge_cases(now_ms: int, seed: int, timezone: str) -> list[Record]:
    """Return valid events that sit on the edges of days, weeks, caps and limits, in production order."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now_ms / 1000, zone).date()
    # The Monday of last week: that whole week, and the Sunday before it, are in the past.
    monday = today - timedelta(days=today.weekday() + 7)

    def at(day: int, hh: int = 0, mm: int = 0, ss: int = 0, ms: int = 0) -> int:
        """Return epoch ms of local time hh:mm on ``monday + day``, plus ``ss`` seconds and ``ms``."""
        d = monday + timedelta(days=day)
        return int(datetime(d.year, d.month, d.day, hh, mm, tzinfo=zone).timestamp() * 1000) + ss * 1000 + ms

    e = _Edges(seed)
    u = [f"edge{seed}-u{i}" for i in range(12)]
    # Logins one millisecond either side of local midnight; two near UTC midnight (one local day).
    e.add("login", u[0], at(0, 0, 0, 0, -1))
    e.add("login", u[0], at(0))
    e.add("login", u[0], at(0, 7, 59, 59, 999))  # 23:59:59.999 UTC of the day before
    e.add("login", u[0], at(0, 8))  # 00:00 UTC
    # like_given: the daily cap and the pair limit, across local midnight, with a late like and a repeat.
    for i in range(7):
        e.add("like", u[1], at(1, 23, 59, 59, 999 - i), target_user_id=u[2])
    for i in range(7):
        e.add("like", u[1], at(2, 0, 0, 0, i), target_user_id=u[2])
    for i in range(12):
        e.add("like", u[1], at(2, 10, 0, i), target_user_id=u[3 + i % 9] if i % 9 != 0 else u[11])
    late = e.add("like", u[1], at(1, 12), target_user_id=u[4])  # late, to a day with room under the cap
    e.again(late, "like")
    e.add("like", u[1], at(2, 11), target_user_id=u[1])  # a self-like
    # weekly_active_100: 99 messages on Sunday, the 100th at Monday 00:00 (another week) ...
    for i in range(99):
        e.add("message", u[5], at(-1, 20, 0, i), kind="text")
    e.add("message", u[5], at(0), kind="text")
    # ... and 100 messages of one week, the last at Sunday 23:59:59.999.
    for i in range(99):
        e.add("message", u[6], at(6, 12, 0, i), kind="image")
    e.add("message", u[6], at(7, 0, 0, 0, -1), kind="voice")
    # Replies: to oneself (no reply points), to nobody (null), to another user.
    e.add("message", u[7], at(3, 9), kind="text", reply_to_user_id=u[7])
    e.add("message", u[7], at(3, 9, 1), kind="file", reply_to_user_id=None, group_id=None)
    e.add("message", u[7], at(3, 9, 2), kind="video", reply_to_user_id=u[8])
    # Thanks cards and quality marks: to oneself (nothing), to another, to a user with no events at all.
    e.add("activity", u[8], at(3, 10), type="thanks_card", target_user_id=u[8], note="")
    e.add("activity", u[8], at(3, 10, 1), type="quality_marked", target_user_id=u[8])
    e.add("activity", u[8], at(3, 10, 2), type="thanks_card", target_user_id=u[9], note=None)
    e.add("activity", u[8], at(3, 10, 3), type="quality_marked", target_user_id=f"edge{seed}-ghost")
    dup = e.add("activity", u[9], at(3, 10, 4), type="thanks_card", target_user_id=u[8])
    e.again(dup, "activity")
    # Groups: no invitee, one invitee, with unknown extra fields; a vote; a feed view (the daily task).
    e.add("activity", u[10], at(4, 9), type="group_created", group_id="gedge-0", invited_count=0)
    e.add(
        "activity", u[10], at(4, 9, 1), type="group_created", group_id="gedge-1", invited_count=1, extra=[1]
    )
    e.add("activity", u[10], at(4, 9, 2), type="vote", group_id=None, target_user_id=None)
    e.add("activity", u[10], at(4, 9, 3), type="feed_view")
    group_edges(e, seed, at)
    return e.records


GROUP_EDGE = 500  # the default group_weekly_500's threshold


def group_edges(e: _Edges, seed: int, at: Any) -> None:
    """Add three groups' weeks (Monday at(0) to Sunday) around ``GROUP_EDGE`` interactions."""
    for name in ("exact", "uncounted", "split"):
        group = f"gedge-{name}"
        g = [f"edge{seed}-{name}{i}" for i in range(12)]
        outsider = f"edge{seed}-{name}-liked"  # liked in the group, never interacting in it: not paid
        messages = GROUP_EDGE - 11
        for i in range(messages):
            e.add(
                "message", g[i % 10], at(1 + i % 5, 9 + i // 300, (i // 5) % 60), kind="text", group_id=group
            )
        for i in range(5):  # 10 counted likes: messages + 10 = the threshold - 1
            e.add("like", g[0], at(2, 15, i), target_user_id=outsider, group_id=group)
            e.add("like", g[3], at(3, 15, i), target_user_id=g[4], group_id=group)
        if name == "exact":  # the last interaction: a user joining in on Sunday night
            e.add("message", g[11], at(6, 23, 30), kind="voice", group_id=group)
        elif name == "uncounted":  # none of these counts: a self-like, two likes past the pair limit
            e.add("like", g[2], at(4, 10), target_user_id=g[2], group_id=group)
            e.add("like", g[0], at(2, 16), target_user_id=outsider, group_id=group)
            e.add("like", g[3], at(3, 16), target_user_id=g[4], group_id=group)
        else:  # the week before and the week after
            e.add("message", g[11], at(0, 0, 0, 0, -1), kind="text", group_id=group)
            e.add("message", g[11], at(7), kind="text", group_id=group)
