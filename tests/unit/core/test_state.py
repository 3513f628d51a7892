"""Per-key state (stream.core.state): MemoryStore, StateCache, Transaction; and Fingerprints."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.state import MemoryStore, StateCache
from stream.engine import processor
from stream.engine.fingerprints import FINGERPRINT_BYTES, Fingerprints, fingerprint
from stream.engine.layout import encode_value
from stream.engine.processor import APPLIED, DUPLICATE
from tests.unit.support import NOON, Harness, msg


def _decode(key: bytes, raw: bytes) -> Any:
    return orjson.loads(raw)


def _encode(key: bytes, value: Any) -> bytes:
    return orjson.dumps(value)


def cache_over(data: dict[bytes, Any] | None = None, partition: int = 0, size: int = 1_000_000) -> StateCache:
    store = MemoryStore()
    if data:
        store.write(partition, {k: orjson.dumps(v) for k, v in data.items()})
    return StateCache(store, _decode, _encode, size=size)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[bytes] = []

    def get(self, partition: int, key: bytes) -> bytes | None:
        self.gets.append(key)
        return super().get(partition, key)


# --- MemoryStore -------------------------------------------------------------------------------


def test_memory_store_write_get_scan_delete() -> None:
    store = MemoryStore()
    store.write(0, {b"b": b"2", b"a": b"1", b"c": b"3"})
    store.write(1, {b"a": b"other"})
    assert store.get(0, b"a") == b"1"
    assert store.get(1, b"a") == b"other"
    assert store.get(2, b"a") is None
    assert list(store.scan(0, b"")) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    store.write(0, {b"b": None, b"zz": None})
    assert list(store.scan(0, b"")) == [(b"a", b"1"), (b"c", b"3")]
    assert list(store.scan(5, b"")) == []


# --- StateCache and Transaction ------------------------------------------------------------------


def test_get_goes_through_to_the_store_once() -> None:
    store = CountingStore()
    store.write(0, {b"k": orjson.dumps({"n": 1})})
    cache = StateCache(store, _decode, _encode)
    tx = cache.begin(0)
    assert tx.get(b"k") == {"n": 1}
    assert tx.get(b"k") == {"n": 1}
    assert tx.get(b"absent") is None
    assert tx.get(b"absent") is None
    assert store.gets == [b"k", b"absent"]  # a miss (absent too) is remembered
    assert tx.exists(b"k") and not tx.exists(b"absent")
    assert cache.get(0, b"k") == {"n": 1}
    assert store.gets == [b"k", b"absent"]


def test_get_reads_the_transactions_partition() -> None:
    store = MemoryStore()
    store.write(3, {b"k": orjson.dumps("three")})
    cache = StateCache(store, _decode, _encode)
    assert cache.begin(3).get(b"k") == "three"


def test_edit_copies_on_first_write_and_never_changes_a_value_read_before() -> None:
    cache = cache_over({b"k": {"n": 1}})
    before = cache.begin(0).get(b"k")
    tx = cache.begin(0)
    value = tx.edit(b"k")
    assert value == {"n": 1} and value is not before
    value["n"] = 2
    assert tx.edit(b"k") is value  # the second edit returns the same private copy
    assert tx.get(b"k") == {"n": 2}  # the transaction sees its own write
    assert before == {"n": 1}  # the value read before is never changed in place
    assert cache.dirty == {b"k": 0}
    assert tx.commit() is True
    assert cache.values[b"k"] == {"n": 2}
    assert before == {"n": 1}
    assert cache.dirty == {b"k": 0}


def test_rollback_puts_back_values_and_change_marks() -> None:
    cache = cache_over({b"k": {"n": 1}, b"d": {"x": 1}})
    first = cache.begin(0)
    first.edit(b"d")["x"] = 2
    first.commit()  # b"d" changed and not flushed: its change mark must survive a later rollback
    tx = cache.begin(0)
    tx.edit(b"k")["n"] = 2
    tx.edit(b"d")["x"] = 3
    tx.set(b"new", 1)
    tx.delete(b"k")
    tx.rollback()
    assert cache.values[b"k"] == {"n": 1}
    assert cache.values[b"d"] == {"x": 2}
    assert b"new" not in cache.values
    assert cache.dirty == {b"d": 0}
    assert tx.commit() is False  # nothing left to keep


def test_edit_of_an_absent_key_uses_the_default() -> None:
    cache = cache_over()
    tx = cache.begin(0)
    assert tx.edit(b"a") == {}
    assert tx.edit(b"b", lambda: {"fresh": True}) == {"fresh": True}
    tx.delete(b"b")
    assert tx.edit(b"b", list) == []  # an edit after a delete starts from the default
    tx.commit()
    assert cache.values == {b"a": {}, b"b": []}


def test_rollback_leaves_nothing() -> None:
    cache = cache_over({b"k": {"n": 1}, b"gone": {"x": 1}})
    tx = cache.begin(0)
    tx.get(b"k")
    snapshot = dict(cache.values)
    tx.edit(b"k")["n"] = 5
    tx.set(b"new", {"n": 9})
    tx.delete(b"gone")
    tx.rollback()
    assert cache.values == snapshot == {b"k": {"n": 1}}
    assert cache.dirty == {}
    assert tx.commit() is False  # nothing left to commit
    assert cache.take_changes() == {}
    tx2 = cache.begin(0)
    assert tx2.get(b"k") == {"n": 1} and tx2.get(b"new") is None and tx2.get(b"gone") == {"x": 1}


def test_delete_and_commit_then_take_changes_gives_none() -> None:
    cache = cache_over({b"k": {"n": 1}}, partition=2)
    tx = cache.begin(2)
    assert tx.exists(b"k")
    tx.delete(b"k")
    assert tx.get(b"k") is None and not tx.exists(b"k")
    tx.set(b"other", {"n": 3})
    assert tx.commit() is True
    assert cache.begin(2).get(b"k") is None
    assert cache.take_changes() == {b"k": (2, None), b"other": (2, orjson.dumps({"n": 3}))}
    assert cache.take_changes() == {}  # cleared
    assert cache.dirty == {}


def test_set_after_delete_and_delete_after_set_in_one_transaction() -> None:
    cache = cache_over({b"k": 1})
    tx = cache.begin(0)
    tx.delete(b"k")
    tx.set(b"k", 2)
    tx.set(b"n", 1)
    tx.delete(b"n")
    tx.commit()
    assert cache.take_changes() == {b"k": (0, b"2"), b"n": (0, None)}


def test_scan_merges_store_cache_and_the_transactions_writes() -> None:
    cache = cache_over({b"u\x00a": 1, b"u\x00b": 2, b"u\x00c": 3, b"v\x00a": 99})
    tx = cache.begin(0)
    tx.set(b"u\x00b", 20)  # committed change over a stored key
    tx.delete(b"u\x00c")  # committed delete of a stored key
    tx.set(b"u\x00d", 4)  # committed key the store does not have
    tx.commit()
    tx = cache.begin(0)
    tx.set(b"u\x00a", 10)  # uncommitted write over a stored key
    tx.delete(b"u\x00d")  # uncommitted delete of a cached key
    tx.set(b"u\x00e", 5)  # uncommitted, in no store
    seen = list(tx.scan(b"u\x00"))
    assert len(seen) == len({k for k, _ in seen})  # each key once
    assert dict(seen) == {b"u\x00a": 10, b"u\x00b": 20, b"u\x00e": 5}
    tx.rollback()
    assert dict(tx.scan(b"u\x00")) == {b"u\x00a": 1, b"u\x00b": 20, b"u\x00d": 4}
    assert dict(tx.scan(b"v\x00")) == {b"v\x00a": 99}


def test_trim_evicts_the_first_loaded_never_a_dirty_key() -> None:
    cache = cache_over({bytes([i]): i for i in range(10)}, size=3)
    tx = cache.begin(0)
    for i in range(10):
        tx.get(bytes([i]))
    tx.set(bytes([0]), 100)
    tx.set(bytes([1]), 101)
    tx.commit()
    cache.trim()
    assert len(cache.values) == 3
    assert set(cache.values) == {bytes([0]), bytes([1]), bytes([9])}
    assert cache.values[bytes([0])] == 100
    # every key dirty: nothing can go, whatever the size
    tx = cache.begin(0)
    for i in range(2, 6):
        tx.set(bytes([i]), i)
    tx.commit()
    cache.size = 1
    cache.trim()
    assert set(cache.dirty) <= set(cache.values)
    assert set(cache.values) == {bytes([i]) for i in (0, 1, 2, 3, 4, 5)}
    changes = cache.take_changes()
    assert set(changes) == {bytes([i]) for i in (0, 1, 2, 3, 4, 5)}
    cache.trim()
    assert len(cache.values) == 1
    # an evicted key is read again from the store (unflushed changes were never evicted)
    assert cache.get(0, bytes([7])) == 7


def test_clear_forgets_values_and_changes() -> None:
    cache = cache_over({b"k": 1})
    tx = cache.begin(0)
    tx.set(b"k", 2)
    tx.commit()
    cache.clear()
    assert cache.values == {} and cache.dirty == {}
    assert cache.get(0, b"k") == 1


# --- an exception in the middle of Engine.apply ------------------------------------------------------


def _snapshot(cache: StateCache) -> tuple[dict[bytes, bytes | None], dict[bytes, int]]:
    values = {k: None if v is None else encode_value(k, v) for k, v in cache.values.items()}
    return values, dict(cache.dirty)


def test_exception_mid_event_rolls_back_and_the_replay_is_not_a_duplicate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    h.apply(msg("u1", NOON, event_id="m1"))
    h.apply(msg("u1", NOON + 1, event_id="m2"))
    before = _snapshot(h.cache)

    def boom(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("boom")

    third = msg("u1", NOON + 2, event_id="m3")
    with monkeypatch.context() as patch:
        # raises when the 3rd message reaches daily_messages: after message_text paid and counters moved
        patch.setattr(processor, "threshold_reason", boom)
        tx = h.cache.begin(0)
        try:
            h.engine.apply(third, tx, b"u1")
        except RuntimeError:
            tx.rollback()
        else:
            pytest.fail("the patched engine did not raise")
    assert _snapshot(h.cache) == before

    out = h.apply(third)  # the replay counts: it is no duplicate
    assert out.status == APPLIED
    assert [(a.rule, a.points) for a in out.points] == [("message_text", 2), ("daily_messages", 5)]
    assert h.apply(third).status == DUPLICATE  # now it has been seen


def test_exception_mid_event_then_another_event_then_the_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    h.apply(msg("u1", NOON, event_id="m1"))

    def boom(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("boom")

    failing = msg("u1", NOON + 1, event_id="m-fail")
    with monkeypatch.context() as patch:
        # raises when message_text pays: after the core, the seen fingerprints and the day were changed
        patch.setattr(processor, "award_id", boom)
        tx = h.cache.begin(0)
        with pytest.raises(RuntimeError):
            h.engine.apply(failing, tx, b"u1")
        tx.rollback()
    assert h.apply(msg("u1", NOON + 2, event_id="m-other")).status == APPLIED
    assert h.apply(failing).status == APPLIED
    assert h.apply(failing).status == DUPLICATE
    assert h.apply(msg("u1", NOON + 3, event_id="m-other")).status == DUPLICATE
    h.flush()
    fresh = Harness(store=h.store)  # what was flushed decodes to the same fingerprints
    assert fresh.apply(failing).status == DUPLICATE
    assert fresh.apply(msg("u1", NOON, event_id="m1")).status == DUPLICATE


# --- Fingerprints ---------------------------------------------------------------------------------------


def test_fingerprints_plus_contains_encode_decode() -> None:
    a, b, c = fingerprint("a"), fingerprint("b"), fingerprint("c")
    assert len(a) == FINGERPRINT_BYTES and a != b
    assert fingerprint("a") == a
    empty = Fingerprints()
    assert len(empty) == 0 and a not in empty and empty.encode() == b""
    one = empty.plus(a)
    two = one.plus(b)
    assert a in one and b not in one
    assert a in two and b in two and c not in two
    assert len(one) == 1 and len(two) == 2
    assert two.encode() == a + b and one.encode() == a and empty.encode() == b""
    back = Fingerprints.decode(two.encode())
    assert len(back) == 2 and a in back and b in back and c not in back
    assert back.encode() == a + b
    three = back.plus(c)
    assert c in three and c not in back
    assert Fingerprints.decode(b"").encode() == b""


def test_fingerprints_rolled_back_extension_is_cut_off_by_the_next_plus() -> None:
    a, b, c, d = (fingerprint(x) for x in "abcd")
    base = Fingerprints().plus(a)
    rolled_back = base.plus(b)  # a transaction extended it, then rolled back
    assert b in rolled_back and b not in base  # the old value does not see the extension
    assert base.encode() == a
    taken = base.plus(c)  # the next transaction extends the old value
    assert c in taken and b not in taken and a in taken
    assert taken.encode() == a + c
    assert taken.plus(d).encode() == a + c + d
    replay = taken.plus(b)  # the rolled-back id, seen again, is new
    assert b in replay and replay.encode() == a + c + b


def test_fingerprints_of_decoded_value_extend_from_the_old_one_after_rollback() -> None:
    a, b, c = (fingerprint(x) for x in "abc")
    stored = Fingerprints.decode(a + b)
    stored.plus(c)  # rolled back
    assert c not in stored and stored.encode() == a + b
    again = stored.plus(c)
    assert again.encode() == a + b + c and len(again) == 3


# --- a random walk against a dict model ------------------------------------------------------------------

KEYS = [b"u\x00a", b"u\x00b", b"u\x00c", b"v\x00a"]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), st.integers(0, 9)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS), st.none()),
        st.tuples(st.just("edit"), st.sampled_from(KEYS), st.integers(0, 9)),
        st.tuples(st.just("get"), st.sampled_from(KEYS), st.none()),
        st.tuples(st.just("commit"), st.none(), st.none()),
        st.tuples(st.just("rollback"), st.none(), st.none()),
        st.tuples(st.just("flush"), st.none(), st.none()),
        st.tuples(st.just("trim"), st.none(), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(initial=st.dictionaries(st.sampled_from(KEYS), st.integers(0, 9)), steps=ops)
def test_random_transactions_match_a_dict_model(initial: dict[bytes, int], steps: list[Any]) -> None:
    store = MemoryStore()
    store.write(0, {k: orjson.dumps({"n": v}) for k, v in initial.items()})
    cache = StateCache(store, _decode, _encode, size=2)
    committed: dict[bytes, dict[str, int]] = {k: {"n": v} for k, v in initial.items()}
    pending: dict[bytes, dict[str, int] | None] = {}
    tx = cache.begin(0)
    reads: list[tuple[Any, dict[str, int]]] = []  # values read through get, and what they were

    def view(key: bytes) -> dict[str, int] | None:
        return pending[key] if key in pending else committed.get(key)

    def commit() -> None:
        tx.commit()
        for k, v in pending.items():
            if v is None:
                committed.pop(k, None)
            else:
                committed[k] = v
        pending.clear()

    for op, key, value in steps:
        if op == "set":
            tx.set(key, {"n": value})
            pending[key] = {"n": value}
        elif op == "delete":
            tx.delete(key)
            pending[key] = None
        elif op == "edit":
            edited = tx.edit(key)
            edited["n"] = value
            edited[key.decode()] = 1
            current = view(key)
            pending[key] = {**(current or {}), "n": value, key.decode(): 1}
        elif op == "get":
            got = tx.get(key)
            assert got == view(key)
            if got is not None and key not in pending:  # a committed value: nobody may change it
                reads.append((got, dict(got)))
        elif op == "commit":
            commit()
        elif op == "rollback":
            tx.rollback()
            pending.clear()
        elif op == "flush":  # between events, as the pipeline does: the open transaction commits first
            commit()
            changes = cache.take_changes()
            store.write(0, {k: raw for k, (_p, raw) in changes.items()})
        else:  # trim, between events too
            commit()
            cache.trim()
            assert set(cache.dirty) <= set(cache.values)
        for k in KEYS:
            assert tx.get(k) == view(k)
        expected = {k: view(k) for k in KEYS[:3]}
        assert dict(tx.scan(b"u\x00")) == {k: v for k, v in expected.items() if v is not None}
    for got, was in reads:
        assert got == was  # edits changed private copies only
    tx.commit()
    for k, v in pending.items():
        if v is None:
            committed.pop(k, None)
        else:
            committed[k] = v
    fresh = cache.begin(0)
    assert {k: fresh.get(k) for k in KEYS} == {k: committed.get(k) for k in KEYS}
    changes = cache.take_changes()
    store.write(0, {k: raw for k, (_p, raw) in changes.items()})
    cache.clear()
    assert {k: cache.get(0, k) for k in KEYS} == {k: committed.get(k) for k in KEYS}
