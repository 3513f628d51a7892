"""Keep state behind a small key-value interface: one transaction per event, one partition's keys.

- ``Store`` is what persists a partition's keys (RocksDB behind the worker, a dict in tests).
- ``StateCache`` holds decoded values in front of a store, in memory, and remembers which keys changed
  since the last flush (only those are written: per event, only the keys that changed).
- ``Transaction`` is one event's view: reads and writes go to the cache, and the first write of each key
  remembers what it replaced, so ``rollback`` (after an exception) leaves nothing behind.

Values are decoded Python objects. A value read with ``get`` must not be changed in place: ``edit``
returns a private copy that the transaction owns (copy on first write), ``set`` replaces a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

_MISSING: Any = object()


class Store(Protocol):
    """Persisted keys of the partitions one worker holds; values are bytes."""

    def get(self, partition: int, key: bytes) -> bytes | None:
        """Return the stored value of ``key``, or None."""

    def scan(self, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield the stored keys starting with ``prefix`` and their values, in key order."""


class MemoryStore:
    """A dict per partition: the store of the engine's tests and of the pure benchmark."""

    def __init__(self) -> None:
        self.partitions: dict[int, dict[bytes, bytes]] = {}

    def get(self, partition: int, key: bytes) -> bytes | None:
        """Return the stored value of ``key``, or None."""
        return self.partitions.get(partition, {}).get(key)

    def scan(self, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield the stored keys starting with ``prefix`` and their values, in key order."""
        data = self.partitions.get(partition, {})
        for key in sorted(k for k in data if k.startswith(prefix)):
            yield key, data[key]

    def write(self, partition: int, changes: dict[bytes, bytes | None]) -> None:
        """Apply encoded changes (None deletes)."""
        data = self.partitions.setdefault(partition, {})
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value


Codec = tuple[
    Callable[[bytes, bytes], Any], Callable[[bytes, Any], bytes]
]  # decode(key, raw), encode(key, v)


class StateCache:
    """Decoded values of recently used keys in front of a store, with the keys changed since the last flush.

    ``take_changes``, ``trim`` and ``clear`` belong between transactions, never inside one.

    The cache is the truth for this worker: the store only sees a change once its batch is flushed. It is
    bounded: ``trim`` evicts the keys loaded first (first in, first out: cheaper per event than exact
    recency, and an evicted key is only read again from the store), never one with an unflushed change.
    """

    def __init__(
        self,
        store: Store,
        decode: Callable[[bytes, bytes], Any],
        encode: Callable[[bytes, Any], bytes],
        size: int = 1_000_000,
    ) -> None:
        self.store = store
        self.decode = decode
        self.encode = encode
        self.size = size
        self.values: dict[bytes, Any] = {}  # key -> value, or None when known absent
        self.dirty: dict[bytes, int] = {}  # changed key -> its partition

    def get(self, partition: int, key: bytes) -> Any:
        """Return the value of ``key`` (None when absent), loading it from the store on a miss."""
        values = self.values
        value = values.get(key, _MISSING)
        if value is _MISSING:
            raw = self.store.get(partition, key)
            value = values[key] = None if raw is None else self.decode(key, raw)
        return value

    def scan(self, partition: int, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        """Yield the keys starting with ``prefix`` and their values: the cache's view over the store's."""
        found: dict[bytes, Any] = {}
        for key, raw in self.store.scan(partition, prefix):
            value = self.values.get(key, _MISSING)
            found[key] = self.decode(key, raw) if value is _MISSING else value
        dirty = self.dirty
        for key, value in self.values.items():  # cached only: changed (on this partition), not flushed yet
            if key not in found and key.startswith(prefix) and dirty.get(key) == partition:
                found[key] = value
        for key in sorted(found):
            if found[key] is not None:
                yield key, found[key]

    def begin(self, partition: int) -> Transaction:
        """Start one event's transaction over the keys of ``partition``."""
        return Transaction(self, partition)

    def take_changes(self) -> dict[bytes, tuple[int, bytes | None]]:
        """Return the changed keys encoded (None: deleted) with their partitions, and clear the changes."""
        values, encode = self.values, self.encode
        changes: dict[bytes, tuple[int, bytes | None]] = {}
        for key, partition in self.dirty.items():
            value = values.get(key)
            changes[key] = (partition, None if value is None else encode(key, value))
        self.dirty.clear()
        return changes

    def trim(self) -> None:
        """Evict the keys loaded first beyond the size, never one with an unflushed change."""
        values, dirty = self.values, self.dirty
        excess = len(values) - self.size
        if excess <= 0:
            return
        for key in list(values)[: excess + len(dirty)]:
            if excess <= 0:
                break
            if key not in dirty:
                del values[key]
                excess -= 1

    def clear(self) -> None:
        """Forget every cached value (partitions moved: the store is the truth again)."""
        self.values.clear()
        self.dirty.clear()


class Transaction:
    """One event's reads and writes over one partition, undone as a whole by ``rollback``.

    Writes go straight into the cache (reads then need one lookup, not two), and the first write of a key
    remembers what it replaced: ``rollback`` puts every such value, and the key's change mark, back.
    """

    __slots__ = ("cache", "dirty", "partition", "undo", "values")

    def __init__(self, cache: StateCache, partition: int) -> None:
        self.cache = cache
        self.partition = partition
        self.values = cache.values
        self.dirty = cache.dirty
        self.undo: dict[bytes, tuple[Any, int | None]] = {}  # key -> (value before, its change mark before)

    def get(self, key: bytes) -> Any:
        """Return the value of ``key`` or None; do not change it in place (use ``edit``)."""
        value = self.values.get(key, _MISSING)
        return self.cache.get(self.partition, key) if value is _MISSING else value

    def edit(self, key: bytes, default: Callable[[], Any] = dict) -> Any:
        """Return a private, changeable copy of the value of ``key`` (``default()`` when absent)."""
        values = self.values
        if key in self.undo:  # written by this transaction already: the value is its own
            value = values[key]
            if value is None:
                value = values[key] = default()
            return value
        current = values.get(key, _MISSING)
        if current is _MISSING:
            current = self.cache.get(self.partition, key)
        self.undo[key] = (current, self.dirty.get(key))
        value = values[key] = default() if current is None else current.copy()
        self.dirty[key] = self.partition
        return value

    def _remember(self, key: bytes) -> None:
        if key not in self.undo:
            current = self.values.get(key, _MISSING)
            self.undo[key] = (current, self.dirty.get(key))
        self.dirty[key] = self.partition

    def set(self, key: bytes, value: Any) -> None:
        """Replace the value of ``key``."""
        self._remember(key)
        self.values[key] = value

    def delete(self, key: bytes) -> None:
        """Delete ``key``."""
        self._remember(key)
        self.values[key] = None

    def exists(self, key: bytes) -> bool:
        """Tell whether ``key`` has a value."""
        return self.get(key) is not None

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        """Yield the keys starting with ``prefix`` and their values, this transaction's writes included."""
        return self.cache.scan(self.partition, prefix)

    def commit(self) -> bool:
        """Keep the writes (their keys are marked changed); return whether there were any."""
        written = bool(self.undo)
        self.undo = {}
        return written

    def rollback(self) -> None:
        """Undo every write of this transaction."""
        values, dirty = self.values, self.dirty
        for key, (before, mark) in self.undo.items():
            if before is _MISSING:
                values.pop(key, None)
            else:
                values[key] = before
            if mark is None:
                dirty.pop(key, None)
            else:
                dirty[key] = mark
        self.undo = {}
