"""One partition's clock, the week-close protocol, local board tops and pruning."""

from __future__ import annotations

from stream.core.state import MemoryStore, StateCache
from stream.domains.messages import Close, Report
from stream.domains.partition import RANKING, PartitionState, merge_top, rank_key
from stream.engine.layout import decode_value, encode_value
from stream.engine.periods import Calendar

TZ = "Asia/Shanghai"
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # Monday 2026-11-23 00:00 (2026-W48)
WEEK = 7 * DAY
GRACE = HOUR


def state(partition: int = 0, partitions: int = 2) -> tuple[PartitionState, StateCache]:
    return PartitionState(partition, partitions, Calendar(TZ)), StateCache(
        MemoryStore(), decode_value, encode_value
    )


def test_ranking_is_by_score_then_first_reached_then_id() -> None:
    entries = [["b", 3, 20], ["a", 3, 20], ["c", 3, 10], ["d", 5, 99]]
    assert [e[0] for e in sorted(entries, key=rank_key)] == ["d", "c", "a", "b"]


def test_merge_top_replaces_a_contestant_and_keeps_the_best_only() -> None:
    top: list[list[object]] = []
    for i in range(RANKING + 3):
        merged = merge_top(top, [f"u{i:02d}", i, 0])  # type: ignore[arg-type]
        assert merged is not None
        top = merged
    assert len(top) == RANKING and top[0][0] == f"u{RANKING + 2:02d}"
    assert merge_top(top, ["low", 0, 0]) is None  # below the last: nothing changes  # type: ignore[arg-type]
    raised = merge_top(top, ["u03", 100, 5])  # type: ignore[arg-type]
    assert raised is not None and raised[0] == ["u03", 100, 5] and len(raised) == RANKING


def test_an_event_past_the_grace_closes_every_earlier_week_once() -> None:
    part, cache = state()
    tx = cache.begin(0)
    # W47 ended at D0: an event exactly the grace past it does not close it yet
    assert [c.week for c in part.observe(tx, D0 + HOUR, GRACE)] == ["2026-W46", "2026-W46"]  # first event
    assert [c.week for c in part.observe(tx, D0 + HOUR + 1, GRACE)] == ["2026-W47", "2026-W47"]
    assert part.observe(tx, D0 + WEEK + GRACE, GRACE) == []  # not *more* than the grace past W48's end
    closes = part.observe(tx, D0 + WEEK + GRACE + 1, GRACE)
    assert [(c.week, c.source, c.to) for c in closes] == [("2026-W48", 0, 0), ("2026-W48", 0, 1)]
    assert part.observe(tx, D0 + WEEK + 2 * GRACE, GRACE) == []
    assert part.late(tx, "2026-W48", None) and not part.late(tx, "2026-W49", None)
    assert not part.late(tx, "2026-W48", 1)  # partition 1's contributions: until its Close is heard


def test_a_week_is_reported_once_every_partition_closed_it() -> None:
    part, cache = state()
    tx = cache.begin(0)
    part.score(tx, "mvc", "2026-W48", "u1", 3, D0 + 5)
    part.score(tx, "mvc", "2026-W49", "u2", 1, D0 + WEEK)
    out = part.on_close(tx, Close("2026-W48", 1, -1), ["mvc", "newcomer"], 35 * DAY)
    assert [(type(m).__name__, getattr(m, "to", None)) for m in out] == [
        ("Close", 0),
        ("Close", 1),
    ]  # joins in
    assert part.late(tx, "2026-W48", 1)
    assert part.on_close(tx, Close("2026-W48", 1, -1), ["mvc"], 35 * DAY) == []  # a replay
    reports = part.on_close(tx, Close("2026-W48", 0, -1), ["mvc", "newcomer"], 35 * DAY)
    assert reports == [
        Report("mvc", "2026-W48", 0, {"2026-W48": [["u1", 3, D0 + 5]]}),
        Report("newcomer", "2026-W48", 0, {}),
    ]
    assert [key for key, _ in cache.scan(0, part.boards_prefix)] == [part.boards_prefix + b"2026-W49"]


def test_counts_are_cumulative_per_partition() -> None:
    part, cache = state(partition=1)
    tx = cache.begin(1)
    [first, other] = part.group_counts(tx, "2026-W48", D0, {"g": (2, D0 + 9), "h": (1, D0)})
    [second] = part.group_counts(tx, "2026-W48", D0, {"g": (1, D0 + 3)})
    assert (first.n, second.n, second.last_ts, second.source, other.n) == (2, 3, D0 + 9, 1, 1)
    assert [c.n for c in part.team_counts(tx, "2026-11", D0, {"t": 4})] == [4]
    assert [c.n for c in part.team_counts(tx, "2026-11", D0, {"t": 1, "u": 2})] == [5, 2]


def test_old_counts_and_economy_are_pruned_when_a_late_week_is_reported() -> None:
    part, cache = state(partitions=1)
    tx = cache.begin(0)
    part.group_counts(tx, "2026-W40", D0 - 8 * WEEK, {"g": (1, D0 - 8 * WEEK)})
    part.group_counts(tx, "2026-W48", D0, {"g": (1, D0)})
    part.economy(tx, "2026-W40", {"r": 1}, {})
    part.team_counts(tx, "2026-09", D0 - 80 * DAY, {"t": 1})
    part.on_close(tx, Close("2026-W48", 0, -1), [], 35 * DAY)
    left = sorted(
        key[len(part.prefix) :] for key, _ in cache.scan(0, part.prefix) if not key.endswith(b"clock")
    )
    assert left == [b"g:2026-W48"]
