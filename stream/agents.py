"""Adapt the pipeline to Faust: consume, flush batches, acknowledge.

One agent, concurrency 1, reads every input topic and the internal routed topic. Each record is
processed at once into the pipeline's current batch; a batch is flushed when it is full or when the
batch window passes, in this order:

1. send every output (awards, badges, credits, forwards, dead letters) and wait for Kafka's ack;
2. write each changed user state to the table once (RocksDB put + changelog record);
3. acknowledge the batch's records, so Faust may commit their offsets.

A crash before 2 replays the batch from the old states into the same outputs with the same ids; a
crash after 2 replays into duplicates that the states recognise. Nothing is acknowledged early.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import faust
from faust.streams import _current_event

from stream import metrics
from stream.pipeline import Batch, Pipeline, Record

log = logging.getLogger(__name__)


def _bind(event: Any) -> None:
    """Make ``event`` the current event, so table access goes to its partition.

    Faust tables pick the partition (store and changelog) from the current event; writes made from
    the flush, outside the stream's own iteration, must set it themselves.
    """
    _current_event.set(weakref.ref(event))


class BatchFlusher:
    """Own the batch lifecycle of one agent: process, flush on size or time, acknowledge."""

    def __init__(
        self, app: faust.App, table: Any, pipeline: Pipeline, batch_max: int, window_s: float
    ) -> None:
        self.app = app
        self.table = table
        self.pipeline = pipeline
        self.batch_max = batch_max
        self.window_s = window_s
        self.lock = asyncio.Lock()
        self.stream: Any = None

    async def run(self, stream: Any) -> None:
        """Consume ``stream`` until it ends, flushing as it goes."""
        self.stream = stream.noack()
        ticker = asyncio.ensure_future(self._tick())
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
                if self.pipeline.pending >= self.batch_max:
                    await self.flush()
        finally:
            ticker.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.window_s)
            if self.pipeline.pending:
                try:
                    await self.flush()
                except Exception as exc:
                    log.exception("flush failed; stopping the worker so the batch is replayed")
                    await self.app.crash(exc)
                    return

    async def flush(self) -> None:
        """Send, persist and acknowledge the current batch."""
        async with self.lock:
            if not self.pipeline.pending:
                return
            started = time.perf_counter()
            batch = self.pipeline.take_batch()
            await self._send(batch)
            table = self.table
            for user_key, (record, value) in batch.states.items():
                _bind(record.handle)
                table[user_key] = value
            stream = self.stream
            for record in batch.records:
                await stream.ack(record.handle)
            self.pipeline.trim()
            _observe(batch, time.perf_counter() - started)

    async def _send(self, batch: Batch) -> None:
        producer = self.app.producer
        futures = []
        for out in batch.outputs:
            ts = out.timestamp_ms / 1000 if out.timestamp_ms is not None else None
            futures.append(await producer.send(out.topic, out.key, out.value, None, ts, None))
        if futures:
            await asyncio.gather(*futures)

    async def drain(self) -> None:
        """Flush what is pending and forget cached states (partitions are moving)."""
        await self.flush()
        self.pipeline.forget()


def _observe(batch: Batch, seconds: float) -> None:
    metrics.BATCH_SECONDS.observe(seconds)
    metrics.BATCH_SIZE.observe(len(batch.records))
    for topic, outcome, reason in batch.outcomes:
        metrics.EVENTS.labels(topic, outcome).inc()
        if outcome == "ignored" and reason:
            metrics.IGNORED.labels(reason).inc()
    for reason in batch.deadletters:
        metrics.DEADLETTERS.labels(reason).inc()
    now = time.time()
    for out, rule, kind, points in batch.awards:
        metrics.AWARDS.labels(rule, kind).inc()
        if points:
            metrics.POINTS.labels(rule).inc(points)
        metrics.LATENCY.observe(max(0.0, now - out.source.timestamp_ms / 1000))
