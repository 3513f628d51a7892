"""Adapt the pipeline to Faust: consume, flush batches, acknowledge.

One agent, concurrency 1, reads every input topic and the internal routed topic. Each record is
processed at once into the pipeline's current batch; a batch is flushed when it is full or when the
batch window passes, in this order:

1. send every output (awards, badges, credits, forwards, dead letters) through librdkafka and wait
   for Kafka's acknowledgement;
2. write each changed user state once to the table's changelog topic, wait for Kafka's
   acknowledgement, then apply it to the table's RocksDB store;
3. acknowledge the batch's records, so Faust may commit their offsets.

A crash before 2 replays the batch from the old states into the same outputs with the same ids; a
crash after 2 replays into duplicates that the states recognise. Nothing is acknowledged early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from stream.engine.processor import IGNORED
from stream.pipeline import Batch, Output, Pipeline, Record
from stream.runtime import metrics
from stream.runtime.output import OutputProducer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ChangelogRecord:
    """The fields of a changelog message that ``Store.apply_changelog_batch`` reads."""

    tp: TP
    offset: int
    partition: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class _Applied:
    message: _ChangelogRecord


def _same(value: Any) -> Any:
    return value


class BatchFlusher:
    """Own the batch lifecycle of one agent: process, flush on size or time, acknowledge."""

    def __init__(
        self,
        app: faust.App,
        table: Any,
        pipeline: Pipeline,
        output: OutputProducer,
        batch_max: int,
        window_s: float,
    ) -> None:
        self.app = app
        self.output = output
        self.table = table
        self.changelog: str = table.changelog_topic.get_topic_name()
        self.pipeline = pipeline
        self.batch_max = batch_max
        self.window_s = window_s
        self.lock = asyncio.Lock()
        self._full = asyncio.Event()
        self.stream: Any = None

    async def run(self, stream: Any) -> None:
        """Consume ``stream`` until it ends; a background task flushes while this one fills."""
        self.stream = stream.noack()
        flusher = asyncio.ensure_future(self._flush_forever())
        try:
            async for event in self.stream.events():
                message = event.message
                self.pipeline.process(
                    Record(
                        message.topic,
                        message.partition,
                        message.offset,
                        message.key,
                        message.value,
                        int(message.timestamp * 1000),
                        event,
                    )
                )
                pending = self.pipeline.pending
                if pending >= self.batch_max:
                    self._full.set()
                    if pending >= 2 * self.batch_max:
                        await self._flush_or_crash()  # back-pressure: the flusher is behind
        finally:
            flusher.cancel()

    async def _flush_forever(self) -> None:
        """Flush whenever a batch is full or the batch window passes."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.window_s)
            self._full.clear()
            if self.pipeline.pending and not await self._flush_or_crash():
                return

    async def _flush_or_crash(self) -> bool:
        """Flush; on failure stop the worker, so that the unacknowledged batch is replayed on restart.

        Going on instead would leave the cached states ahead of what was sent and persisted.
        """
        try:
            await self.flush()
        except Exception as exc:
            log.exception("flush failed; stopping the worker so the batch is replayed")
            await self.app.crash(exc)
            return False
        return True

    async def flush(self) -> None:
        """Send, persist and acknowledge the current batch."""
        async with self.lock:
            if not self.pipeline.pending:
                return
            started = time.perf_counter()
            batch = self.pipeline.take_batch()
            await self.output.publish(batch.outputs)
            await self._persist(batch)
            stream = self.stream
            for record in batch.records:
                await stream.ack(record.handle)
            self.pipeline.trim()
            _observe(batch, time.perf_counter() - started)

    async def _persist(self, batch: Batch) -> None:
        """Write the batch's states to the changelog topic, then to RocksDB as recovery would.

        Each state goes to the changelog partition of the input it came from (as ``table[key] = value``
        would send it); once Kafka acknowledged them, the store applies them with the same call Faust
        uses to restore a changelog: one RocksDB write batch per partition, and the changelog offsets
        recorded so that recovery reads only what is newer.
        """
        if not batch.states:
            return
        changelog = self.changelog
        records = [
            Output(changelog, user_key, value, record, partition=record.partition)
            for user_key, (record, value) in batch.states.items()
        ]
        offsets = await self.output.publish(records)
        applied = [
            _Applied(
                _ChangelogRecord(
                    TP(changelog, record.partition),
                    offsets[(changelog, record.partition)],
                    record.partition,
                    user_key,
                    value,
                )
            )
            for user_key, (record, value) in batch.states.items()
        ]
        self.table.data.apply_changelog_batch(applied, to_key=_same, to_value=_same)

    async def drain(self) -> None:
        """Flush what is pending and forget cached states (partitions are moving)."""
        if await self._flush_or_crash():
            self.pipeline.forget()


def _observe(batch: Batch, seconds: float) -> None:
    """Record a flushed batch in the metrics, one increment per label set."""
    metrics.BATCH_SECONDS.observe(seconds)
    metrics.BATCH_SIZE.observe(len(batch.records))
    for (topic, outcome), n in Counter((topic, outcome) for topic, outcome, _ in batch.outcomes).items():
        metrics.EVENTS.labels(topic, outcome).inc(n)
    ignored = Counter(reason for _, outcome, reason in batch.outcomes if outcome == IGNORED and reason)
    for reason, n in ignored.items():
        metrics.IGNORED.labels(reason).inc(n)
    for reason, n in Counter(batch.deadletters).items():
        metrics.DEADLETTERS.labels(reason).inc(n)
    awards: Counter[tuple[str, str]] = Counter()
    points: Counter[str] = Counter()
    now = time.time()
    latency = metrics.LATENCY.observe
    for out, rule, kind, amount in batch.awards:
        awards[(rule, kind)] += 1
        if amount:
            points[rule] += amount
        latency(max(0.0, now - out.source.timestamp_ms / 1000))
    for (rule, kind), n in awards.items():
        metrics.AWARDS.labels(rule, kind).inc(n)
    for rule, n in points.items():
        metrics.POINTS.labels(rule).inc(n)
