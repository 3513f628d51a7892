"""A partition's event-time timers: scheduled once, fired in order when its event time passes them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.state import MemoryStore, StateCache
from stream.domains.timers import DAY_MS, NEVER, Timers
from stream.engine.layout import decode_value, encode_value


def fresh() -> tuple[Timers, StateCache]:
    return Timers(b"\x00p\x000\x00"), StateCache(MemoryStore(), decode_value, encode_value)


def test_nothing_fires_before_its_time_and_each_fires_once() -> None:
    timers, cache = fresh()
    tx = cache.begin(0)
    timers.schedule(tx, 5 * DAY_MS, "dl", "bob")
    timers.schedule(tx, 5 * DAY_MS, "dl", "bob")  # idempotent
    timers.schedule(tx, 2 * DAY_MS + 7, "fd", "amy")
    assert timers.fire(tx, 2 * DAY_MS + 7) == []  # due is not passed yet: "passes" means later
    assert timers.fire(tx, 2 * DAY_MS + 8) == [(2 * DAY_MS + 7, "fd", "amy")]
    assert timers.fire(tx, 4 * DAY_MS) == []
    assert timers.fire(tx, 9 * DAY_MS) == [(5 * DAY_MS, "dl", "bob")]
    assert timers.fire(tx, 99 * DAY_MS) == [] and timers.earliest(tx) == NEVER
    assert timers.pending(tx) == []


def test_the_earliest_due_is_read_again_after_the_partition_moves() -> None:
    timers, cache = fresh()
    tx = cache.begin(0)
    timers.schedule(tx, 3 * DAY_MS, "dl", "bob")
    tx.commit()
    again = Timers(b"\x00p\x000\x00")  # a new worker: nothing in memory
    assert again.next_due is None
    assert again.earliest(cache.begin(0)) == 3 * DAY_MS


@settings(max_examples=60, deadline=None)
@given(
    dues=st.lists(st.integers(0, 30 * DAY_MS), min_size=1, max_size=40),
    clocks=st.lists(st.integers(0, 40 * DAY_MS), min_size=1, max_size=20),
)
def test_fired_timers_are_exactly_those_passed_by_the_clock(dues: list[int], clocks: list[int]) -> None:
    timers, cache = fresh()
    tx = cache.begin(0)
    for i, due in enumerate(dues):
        timers.schedule(tx, due, "dl", f"u{i}")
    fired: list[tuple[int, str, str]] = []
    latest = -1
    for now in clocks:
        got = timers.fire(tx, now)
        assert got == sorted(got)
        fired.extend(got)
        latest = max(latest, now)
        expected = sorted((due, "dl", f"u{i}") for i, due in enumerate(dues) if due < latest)
        assert sorted(fired) == expected
    assert sorted(fired + timers.pending(tx)) == sorted((d, "dl", f"u{i}") for i, d in enumerate(dues))
