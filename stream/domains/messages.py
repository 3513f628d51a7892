"""Name the key spaces beyond users and the typed messages that travel between them on the internal topic.

State is keyed by an *owner*: a user (its id), a group, a team, a board, or one partition itself. A
message goes to its owner's partition through the internal (routed) topic, keyed by the owner key, or to
an explicit partition (``Close``). Each message is idempotent by construction, so a replay after a crash
or a rebalance never counts twice and no set of fingerprints grows:

- ``GroupCount``: one partition's *cumulative* count of a group's week; the group keeps the largest per partition.
  It carries the users whose first interaction in the group's week it includes (the group keeps the
  set of its members).
- ``TeamCount``: one partition's cumulative count of a team's month; the team keeps the largest per partition.
- ``RosterChange``: a user joined or left a team, with the user's roster version; the team keeps the newest.
- ``Close``: a partition has closed every week up to ``week`` (a cumulative watermark).
- ``Report``: a partition's exact local top of a board for the weeks up to ``upto`` (cumulative).
- ``GroupWon``: a group won a board's week; it titles its members active that week.
- ``Grant``: pay a user an award decided elsewhere; the user's period record marks it paid.

Owner keys of groups, teams, boards and partitions start with a NUL byte, which no user's key does unless
the user's id itself starts with one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.domains.invitations import Invitation, parse_invitation

GROUP, TEAM, BOARD, PARTITION = b"\x00g\x00", b"\x00t\x00", b"\x00b\x00", b"\x00p\x00"


def group_owner(group: str) -> bytes:
    """Return the owner key of a group's state."""
    return GROUP + group.encode()


def team_owner(team: str) -> bytes:
    """Return the owner key of a team's state (roster and months)."""
    return TEAM + team.encode()


def board_owner(board: str) -> bytes:
    """Return the owner key of a board's state (its decided weeks)."""
    return BOARD + board.encode()


def partition_owner(partition: int) -> bytes:
    """Return the owner key of one partition's own state (clock, local boards, team counts, economy)."""
    return PARTITION + str(partition).encode()


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs ~6x (measured)
class GroupCount:
    """Partition ``source`` has counted ``n`` interactions of ``group`` in ``week`` so far (latest ``last_ts``)."""

    group: str
    week: str
    source: int
    n: int
    last_ts: int
    week_start_ms: int
    joined: tuple[tuple[str, int], ...] = ()  # (user, ts) of users whose first interaction this count holds

    def owner(self) -> bytes:
        return group_owner(self.group)

    def to_record(self) -> dict[str, Any]:
        body: list[Any] = [self.group, self.week, self.source, self.n, self.last_ts, self.week_start_ms]
        if self.joined:
            body.append(self.joined)
        return {"gc": body}


@dataclass(slots=True, unsafe_hash=True)
class GroupJoin:
    """``user`` interacted in ``group`` in ``week`` for the first time (it travels inside a ``GroupCount``)."""

    group: str
    week: str
    user: str
    ts: int
    week_start_ms: int

    def owner(self) -> bytes:
        return group_owner(self.group)


@dataclass(slots=True, unsafe_hash=True)
class TeamCount:
    """Partition ``source`` has counted ``n`` events of ``team`` in ``month`` so far."""

    team: str
    month: str
    source: int
    n: int
    month_start_ms: int

    def owner(self) -> bytes:
        return team_owner(self.team)

    def to_record(self) -> dict[str, Any]:
        return {"tc": [self.team, self.month, self.source, self.n, self.month_start_ms]}


@dataclass(slots=True, unsafe_hash=True)
class RosterChange:
    """``user`` is on ``team``'s roster since ``joined_at`` (None: left), as of the user's ``version``."""

    team: str
    user: str
    version: int
    joined_at: int | None

    def owner(self) -> bytes:
        return team_owner(self.team)

    def to_record(self) -> dict[str, Any]:
        return {"ro": [self.team, self.user, self.version, self.joined_at]}


@dataclass(slots=True, unsafe_hash=True)
class Close:
    """Partition ``source`` has closed every week up to ``week`` (ISO week names sort in time order)."""

    week: str
    source: int
    to: int  # the partition it is sent to

    def to_record(self) -> dict[str, Any]:
        return {"cl": [self.week, self.source]}


@dataclass(slots=True)
class Report:
    """Partition ``source``'s exact local top of ``board`` for every week up to ``upto`` not reported before."""

    board: str
    upto: str
    source: int
    weeks: dict[str, list[list[Any]]]  # week -> [[id, score, last_ts], ...]

    def owner(self) -> bytes:
        return board_owner(self.board)

    def to_record(self) -> dict[str, Any]:
        return {"rp": [self.board, self.upto, self.source, self.weeks]}


@dataclass(slots=True, unsafe_hash=True)
class GroupWon:
    """``group`` won ``board`` in ``week``: each of its members active that week gets the title."""

    group: str
    week: str
    board: str
    title: str
    version: str
    week_start_ms: int

    def owner(self) -> bytes:
        return group_owner(self.group)

    def to_record(self) -> dict[str, Any]:
        return {"gw": [self.group, self.week, self.board, self.title, self.version, self.week_start_ms]}


@dataclass(slots=True, unsafe_hash=True)
class Grant:
    """Pay ``user`` an award decided by another key: points, a badge, or both, once per ``identity``.

    ``per`` (week | month) names the user's period record that marks it paid; ``identity`` is what the
    award is for (e.g. the group), so the award id is (rule, identity, period, user).
    """

    user: str
    rule: str
    identity: str
    per: str
    period: str
    period_start_ms: int
    period_end_ms: int
    points: int
    badge: str | None
    kind: str | None
    version: str
    reason: str

    def owner(self) -> bytes:
        return self.user.encode()

    def to_record(self) -> dict[str, Any]:
        return {
            "gr": [
                self.user,
                self.rule,
                self.identity,
                self.per,
                self.period,
                self.period_start_ms,
                self.period_end_ms,
                self.points,
                self.badge,
                self.kind,
                self.version,
                self.reason,
            ]
        }


Internal = GroupCount | TeamCount | RosterChange | Close | Report | GroupWon | Grant | Invitation


def parse_internal(envelope: dict[str, Any]) -> Internal | None:
    """Return the typed message of an internal envelope, or None when it is not one of these.

    Raises ``KeyError``, ``ValueError`` or ``TypeError`` for a malformed message.
    """
    if len(envelope) != 1:
        return None
    ((tag, body),) = envelope.items()
    if tag == "iv":
        return parse_invitation(body)
    if tag == "gc":
        g, w, src, n, ts, ws, *rest = body
        if len(rest) > 1:
            raise ValueError("a group count has at most 7 fields")
        joined = tuple((str(user), int(at)) for user, at in rest[0]) if rest else ()
        return GroupCount(str(g), str(w), int(src), int(n), int(ts), int(ws), joined)
    if tag == "tc":
        t, m, src, n, ms = body
        return TeamCount(str(t), str(m), int(src), int(n), int(ms))
    if tag == "ro":
        t, u, v, joined = body
        return RosterChange(str(t), str(u), int(v), None if joined is None else int(joined))
    if tag == "cl":
        w, src = body
        return Close(str(w), int(src), -1)
    if tag == "rp":
        b, upto, src, weeks = body
        if not isinstance(weeks, dict):
            raise TypeError("report weeks must be a mapping")
        return Report(str(b), str(upto), int(src), weeks)
    if tag == "gw":
        g, w, b, title, version, ws = body
        return GroupWon(str(g), str(w), str(b), str(title), str(version), int(ws))
    if tag == "gr":
        user, rule, ident, per, period, ps, pe, points, badge, kind, version, reason = body
        return Grant(
            str(user),
            str(rule),
            str(ident),
            str(per),
            str(period),
            int(ps),
            int(pe),
            int(points),
            None if badge is None else str(badge),
            None if kind is None else str(kind),
            str(version),
            str(reason),
        )
    return None
