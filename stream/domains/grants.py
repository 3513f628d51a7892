"""Build the grants an owner (group, team, board) sends to users for a challenge crossed or a title won."""

from __future__ import annotations

from stream.domains.messages import Grant
from stream.rules.compiler import Board, Challenge


def challenge_grant(
    challenge: Challenge, user: str, identity: str, period: str, start_ms: int, end_ms: int, version: str
) -> Grant:
    """Return the grant paying ``user`` a challenge's points for ``identity`` (the group or team) in a period."""
    return Grant(
        user=user,
        rule=challenge.name,
        identity=identity,
        per=challenge.per,
        period=period,
        period_start_ms=start_ms,
        period_end_ms=end_ms,
        points=challenge.points,
        badge=None,
        kind=None,
        version=version,
        reason=f"{challenge.title} ({challenge.owner} {identity}, {period})",
    )


def title_grant(
    board: str, title: str, user: str, week: str, start_ms: int, end_ms: int, version: str, via: str = ""
) -> Grant:
    """Return the grant of a board's title badge to ``user`` for ``week`` (``via``: the winning group)."""
    return Grant(
        user=user,
        rule=board,
        identity=board,
        per="week",
        period=week,
        period_start_ms=start_ms,
        period_end_ms=end_ms,
        points=0,
        badge=board,
        kind="title",
        version=version,
        reason=f"{title} of {week}" + (f" (group {via})" if via else ""),
    )


def board_title(board: Board) -> str:
    """Return the words a title's reason starts with."""
    return board.title
