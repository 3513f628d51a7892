"""A cluster of partitions in one process: one pipeline, the internal topic's partitions as queues.

Every routed output is delivered back as a record on its partition, in order per partition, until nothing
more is sent; with a seed, partitions are interleaved and batches cut at random (any delivery order Kafka
allows), so the protocols between keys run as on a broker.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict, deque
from typing import Any

import orjson

from stream.core.state import MemoryStore, StateCache
from stream.engine.layout import decode_value, encode_value
from stream.pipeline import Output, Pipeline, Record, Topics, partition_for


class SimulatedCluster:
    """Run records through a pipeline over ``partitions`` and deliver its internal topic back to it."""

    def __init__(
        self, pipeline: Pipeline, store: MemoryStore, topics: Topics, ts: int, seed: int | None
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.topics = topics
        self.partitions = pipeline.partitions
        self.ts = ts  # the timestamp of the records delivered
        self.offsets = itertools.count()
        self.routed: dict[int, deque[Record]] = defaultdict(deque)
        self.outputs: list[Output] = []
        self.random = random.Random(seed) if seed is not None else None

    @staticmethod
    def state() -> tuple[MemoryStore, StateCache]:
        """Return a new store and the cache in front of it."""
        store = MemoryStore()
        return store, StateCache(store, decode_value, encode_value)

    def _run(self, records: list[Record]) -> None:
        batch = self.pipeline.run(records)
        self.store_changes(batch.changes)
        for out in batch.outputs:
            if out.topic == self.topics.routed:
                assert out.key is not None
                partition = (
                    out.partition if out.partition is not None else partition_for(out.key, self.partitions)
                )
                self.routed[partition].append(
                    Record(out.topic, partition, next(self.offsets), out.key, out.value, self.ts)
                )
            else:
                self.outputs.append(out)

    def store_changes(self, changes: dict[bytes, tuple[int, bytes | None]]) -> None:
        for key, (partition, raw) in changes.items():
            self.store.write(partition, {key: raw})

    def settle(self) -> None:
        """Deliver routed records until none is left (in order per partition; partitions interleaved)."""
        while any(self.routed.values()):
            ready = [p for p, queue in self.routed.items() if queue]
            p = self.random.choice(ready) if self.random else ready[0]
            queue = self.routed[p]
            take = self.random.randint(1, len(queue)) if self.random else len(queue)
            self._run([queue.popleft() for _ in range(take)])

    def awards(self) -> dict[str, dict[str, Any]]:
        """Return the point awards and badges by id (asserting an id never comes with two contents)."""
        by_id: dict[str, dict[str, Any]] = {}
        for out in self.outputs:
            if out.topic in (self.topics.points, self.topics.badges):
                value = orjson.loads(out.value or b"")
                assert by_id.setdefault(value["award_id"], value) == value
        return by_id
