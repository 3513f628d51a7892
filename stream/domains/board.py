"""Decide a board's weeks from the partitions' exact local tops.

Each partition reports, once it has heard every partition close a week, its local top of the board for
that week (``Report``, cumulative: ``upto`` only grows, so a replay is ignored). When every partition has
reported up to a week, the week is decided: the merged ranking (score, then who reached it first by event
time, then the smaller id), the winner's title (``Grant``; for a group board ``GroupWon`` to the group,
which titles its members active that week). Decided weeks are kept for the retention period.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.core.state import Transaction
from stream.domains.grants import title_grant
from stream.domains.messages import Grant, GroupWon, Report
from stream.domains.partition import RANKING, rank_key
from stream.engine.layout import SEPARATOR
from stream.rules.compiler import CompiledRules

WEEK_MS = 7 * 86_400_000
CORE = b"core"


def decided_key(owner: bytes, week: str) -> bytes:
    """Return the key of a board's decided week."""
    return owner + SEPARATOR + b"w:" + week.encode()


def _new_core() -> dict[str, Any]:
    return {"from": {}, "open": {}, "closed": "", "kept": {}}


def on_report(
    tx: Transaction,
    report: Report,
    partitions: int,
    rules_at: Callable[[str], tuple[CompiledRules, int]],
) -> list[Grant | GroupWon]:
    """Merge a partition's report; decide every week all partitions have now reported.

    ``rules_at(week)`` returns the rules in effect at the week's start, and that start in epoch ms.
    """
    owner = report.owner()
    core_key = owner + SEPARATOR + CORE
    core = tx.get(core_key)
    source = str(report.source)
    if not 0 <= report.source < partitions:
        return []
    if core is not None and report.upto <= core["from"].get(source, ""):
        return []
    core = tx.edit(core_key, _new_core)
    core["from"] = {**core["from"], source: report.upto}
    pending = dict(core["open"])
    for week, entries in report.weeks.items():
        if week <= core["closed"]:
            continue  # decided already
        merged = pending.get(week, []) + [list(entry) for entry in entries]
        merged.sort(key=rank_key)
        pending[week] = merged[:RANKING]
    core["open"] = pending
    if len(core["from"]) < partitions:
        return []
    upto = min(core["from"].values())
    if upto <= core["closed"]:
        return []
    out: list[Grant | GroupWon] = []
    kept = dict(core["kept"])
    for week in sorted(w for w in pending if w <= upto):
        ranking = pending.pop(week)
        rules, start_ms = rules_at(week)
        out.extend(_decide(tx, owner, report.board, week, ranking, rules, start_ms))
        kept[week] = start_ms
    core["open"] = pending
    core["closed"] = upto
    if kept:
        newest = max(kept.values())
        retention = rules_at(upto)[0].retention_ms
        for week, start_ms in list(kept.items()):
            if start_ms + WEEK_MS + retention <= newest:
                tx.delete(decided_key(owner, week))
                del kept[week]
    core["kept"] = kept
    return out


def _decide(
    tx: Transaction,
    owner: bytes,
    board: str,
    week: str,
    ranking: list[list[Any]],
    rules: CompiledRules,
    start_ms: int,
) -> list[Grant | GroupWon]:
    spec = next((b for b in rules.boards if b.name == board), None)
    winner = ranking[0][0] if ranking and spec is not None else None
    tx.set(
        decided_key(owner, week),
        {
            "ranking": ranking,
            "winner": winner,
            "version": rules.version,
            "score": spec.score if spec else None,
        },
    )
    if winner is None or spec is None:
        return []
    end_ms = start_ms + WEEK_MS
    if spec.score == "group_interactions":
        return [GroupWon(winner, week, board, spec.title, rules.version, start_ms)]
    return [title_grant(board, spec.title, winner, week, start_ms, end_ms, rules.version)]


def board_view(get: Any, owner: bytes, week: str, partitions: int) -> dict[str, Any] | None:
    """Return the public view of a board's week: its ranking and winner once closed, else how far it got."""
    core = get(owner + SEPARATOR + CORE)
    decided = get(decided_key(owner, week))
    if decided is not None:
        return {
            "week": week,
            "closed": True,
            "winner": decided["winner"],
            "ranking": [
                {"rank": i + 1, "id": ident, "score": score, "reached_at": ts}
                for i, (ident, score, ts) in enumerate(decided["ranking"])
            ],
            "rules_version": decided["version"],
        }
    if core is None:
        return None
    closed = week <= core["closed"]
    return {
        "week": week,
        "closed": closed,
        "winner": None,
        "ranking": [],
        "partitions_reported": sum(1 for upto in core["from"].values() if upto >= week),
        "partitions": partitions,
    }
