"""Turn a batch of input records into output records and changed state keys.

Kafka-free: the agent hands in records and a state cache over its store, and gets back what to send and
what to store. It decides per record: dead letter (invalid input), forward (the record sits on a
partition other than its user's, or it is a credit for another user), or apply the rules, in one state
transaction per event (a failing event changes nothing and becomes a ``processing_error`` dead letter).

The agent must make every output durable *before or with* the changed states: then a crash at any
point replays into the same awards with the same ids (see stream/runtime/flush.py).
"""

from __future__ import annotations

import logging
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from stream.core.state import StateCache
from stream.engine.credits import Credit
from stream.engine.layout import StateFormatError
from stream.engine.processor import APPLIED, TOO_LATE, Engine, Outcome
from stream.events import Event, InvalidEvent, Reason, decode, encode_deadletter

log = logging.getLogger(__name__)

FORWARDED = "forwarded"
INVALID = "deadletter"
ERROR = "error"


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs ~6x (measured)
class Record:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(slots=True, unsafe_hash=True)
class Output:
    """One record to produce; ``source`` is the input record it came from."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (a deleted state key)
    source: Record
    timestamp_ms: int | None = None
    partition: int | None = None  # None: the key's murmur2 partition


@dataclass(slots=True)
class Batch:
    """What a batch produced: outputs to send, state changes to store, input offsets to commit."""

    records: list[Record] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> next offset
    outputs: list[Output] = field(default_factory=list)
    last: dict[int, Record] = field(default_factory=dict)  # partition -> its latest record that changed state
    changes: dict[bytes, tuple[int, bytes | None]] = field(default_factory=dict)  # filled by take_batch
    outcomes: list[tuple[str, str, str | None]] = field(default_factory=list)  # topic, outcome, reason
    awards: list[tuple[Output, str, str, int]] = field(default_factory=list)  # output, rule, kind, points
    deadletters: list[str] = field(default_factory=list)  # reasons


@dataclass(slots=True, unsafe_hash=True)
class Topics:
    """The topic names the pipeline reads and writes."""

    sources: dict[str, str]  # input topic -> source kind ("message", "like", ...)
    routed: str
    points: str
    badges: str
    deadletter: str


@lru_cache(maxsize=1 << 16)
def _murmur(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes, partitions: int) -> int:
    """Return the partition Kafka's default (murmur2) partitioner gives ``key``."""
    return _murmur(key) % partitions


class Pipeline:
    """Process records one at a time into the current batch; the caller flushes batches.

    State lives in a cache in front of the store (stream/core/state.py): the cache is the truth for this
    worker, since the store only sees a change once its batch is flushed. Call ``forget`` when partitions
    move, after flushing.
    """

    def __init__(
        self,
        engine: Engine,
        topics: Topics,
        partitions: int,
        now_ms: Callable[[], int],
        cache: StateCache,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.partitions = partitions
        self.now_ms = now_ms
        self.cache = cache
        self.batch = Batch()

    @property
    def max_future_ms(self) -> int:
        """Return how far ahead of the clock an event may be stamped (the most any rules version allows)."""
        return self.engine.book.max_future_ms

    def process(self, record: Record) -> None:
        """Process one record into the current batch."""
        batch = self.batch
        batch.records.append(record)
        batch.offsets[(record.topic, record.partition)] = record.offset + 1
        now = self.now_ms()
        try:
            self._one(record, now, batch)
        except StateFormatError:
            raise  # not this record's fault: the worker must stop
        except Exception as exc:
            log.exception("processing failed for %s[%d]@%d", record.topic, record.partition, record.offset)
            self._dead(record, Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}", now, batch)

    def run(self, records: Sequence[Record]) -> Batch:
        """Process ``records`` and take them as one batch."""
        for record in records:
            self.process(record)
        return self.take_batch()

    @property
    def pending(self) -> int:
        """Return how many records the current batch holds."""
        return len(self.batch.records)

    def take_batch(self) -> Batch:
        """Close the current batch: encode its changed state keys and start a new one."""
        batch, self.batch = self.batch, Batch()
        batch.changes = self.cache.take_changes()
        return batch

    def trim(self) -> None:
        """Evict the least recently used state keys beyond the cache's size (never unflushed ones)."""
        self.cache.trim()

    def forget(self) -> None:
        """Drop every cached state (after a rebalance the store is the truth again)."""
        self.cache.clear()

    def _one(self, record: Record, now: int, batch: Batch) -> None:
        topics = self.topics
        if record.topic == topics.routed:
            event, source_record = self._unwrap(record, now)
        else:
            source = topics.sources[record.topic]
            try:
                event = decode(source, record.value, record.key, now_ms=now, max_future_ms=self.max_future_ms)
            except InvalidEvent as exc:
                self._dead(record, exc.reason, exc.detail, now, batch)
                return
            source_record = record
        user_key = event.user_id.encode()
        if partition_for(user_key, self.partitions) != record.partition:
            self._forward(record, user_key, source_record, batch)
            return
        tx = self.cache.begin(record.partition)
        try:
            outcome = self.engine.apply(event, tx, user_key)
        except BaseException:
            tx.rollback()
            raise
        if tx.commit():
            batch.last[record.partition] = record
        if outcome.status == TOO_LATE:
            self._dead(source_record, Reason.TOO_LATE, outcome.reason or "", now, batch, counted_as=record)
            return
        batch.outcomes.append((record.topic, outcome.status, outcome.reason))
        self._emit(source_record, outcome, batch)

    def _unwrap(self, record: Record, now: int) -> tuple[Event | Credit, Record]:
        envelope = orjson.loads(record.value or b"null")
        if "credit" in envelope:
            return Credit.from_record(envelope["credit"]), record
        key = envelope.get("key")
        tombstone = envelope.get("tombstone", False)
        origin = Record(
            envelope["topic"],
            envelope["partition"],
            envelope["offset"],
            None if key is None else b64decode(key),
            None if tombstone else envelope["raw"].encode(),
            record.timestamp_ms,
        )
        source = self.topics.sources[origin.topic]
        # Validated at its origin already: the future-time check is not repeated against a later clock.
        event = decode(source, origin.value, record.key, now_ms=now + self.max_future_ms, max_future_ms=0)
        return event, origin

    def _forward(self, record: Record, user_key: bytes, origin: Record, result: Batch) -> None:
        """Send a record to its user's partition through the routed topic."""
        if record.topic == self.topics.routed:
            value = record.value or b""  # already an envelope or a credit: pass it on as it is
        else:
            envelope: dict[str, Any] = {
                "topic": origin.topic,
                "partition": origin.partition,
                "offset": origin.offset,
                "key": None if origin.key is None else b64encode(origin.key).decode(),
                "raw": "" if origin.value is None else origin.value.decode(),
            }
            if origin.value is None:
                envelope["tombstone"] = True
            value = orjson.dumps(envelope)
        result.outputs.append(Output(self.topics.routed, user_key, value, record, record.timestamp_ms))
        result.outcomes.append((record.topic, FORWARDED, Reason.MISROUTED.value))

    def _emit(self, record: Record, outcome: Outcome, result: Batch) -> None:
        """Append the outputs of an event; ``record`` is the input it came from (before any forwarding)."""
        topics, outputs = self.topics, result.outputs
        for award in outcome.points:
            out = Output(topics.points, award.user_id.encode(), orjson.dumps(award.to_record()), record)
            outputs.append(out)
            result.awards.append((out, award.rule, "points", award.points))
        for badge in outcome.badges:
            out = Output(topics.badges, badge.user_id.encode(), orjson.dumps(badge.to_record()), record)
            outputs.append(out)
            result.awards.append((out, badge.badge, badge.kind, 0))
        for credit in outcome.credits:
            value = orjson.dumps({"credit": credit.to_record()})
            outputs.append(Output(topics.routed, credit.user_id.encode(), value, record, record.timestamp_ms))

    def rejected(self, output: Output, error: str) -> Output:
        """Return the dead letter that replaces an output Kafka refused for good (``output_rejected``).

        It names the input record the output came from; the dead letter is bounded in size, so it is
        never refused itself.
        """
        source = output.source
        detail = f"output to {output.topic} ({len(output.value or b'')} bytes) rejected: {error}"
        value = encode_deadletter(
            source.topic,
            source.partition,
            source.offset,
            source.key,
            source.value,
            Reason.OUTPUT_REJECTED,
            detail,
            self.now_ms(),
        )
        return Output(self.topics.deadletter, None, value, source)

    def _dead(
        self,
        record: Record,
        reason: Reason,
        detail: str,
        now: int,
        result: Batch,
        counted_as: Record | None = None,
    ) -> None:
        value = encode_deadletter(
            record.topic, record.partition, record.offset, record.key, record.value, reason, detail, now
        )
        result.outputs.append(Output(self.topics.deadletter, None, value, counted_as or record))
        result.outcomes.append(((counted_as or record).topic, INVALID, reason.value))
        result.deadletters.append(reason.value)


__all__ = ["APPLIED", "Batch", "Output", "Pipeline", "Record", "Topics", "partition_for"]
