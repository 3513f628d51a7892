"""Read a partition's state keys straight from the RocksDB database Faust keeps for it.

The batch path writes through ``apply_changelog_batch`` (stream/runtime/flush.py); reads go to the one
database of the key's partition, not through Faust's table, which searches every partition's database
for a key it has not seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class TableStore:
    """The ``Store`` (stream/core/state.py) over a Faust RocksDB table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def holds(self, partition: int) -> bool:
        """Tell whether this worker has the database of ``partition`` open (it is assigned here)."""
        return partition in self.table.data._dbs

    def _db(self, partition: int) -> Any:
        return self.table.data._db_for_partition(partition)

    def get(self, partition: int, key: bytes) -> bytes | None:
        """Return the stored value of ``key`` in ``partition``, or None."""
        value: bytes | None = self._db(partition).get(key)
        return value

    def scan(self, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield the stored keys of ``partition`` starting with ``prefix`` and their values, in key order."""
        it = self._db(partition).iter()
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, it.value()
            it.next()
