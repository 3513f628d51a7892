"""Take input records from Faust's own fetcher straight into the pipeline, in batches.

Faust hands each record to a stream one message at a time (~120 µs of framework per event). Here the
aiokafka driver's ``Consumer._drain_messages`` is replaced: each fetch's records of the batch topics (the
inputs and the internal routed topic) go to a ``BatchSink`` as plain ``Record``s in one call; records of
any other partition (table changelogs during recovery, standbys) still take Faust's path to
``on_message``, so tables, recovery and standbys work as before.

These records are never acknowledged to Faust, so Faust never commits their offsets: the sink commits
them itself once they are durable (see stream/runtime/flush.py). This relies on private parts of
faust-streaming 0.15.x (``_wait_next_records``, ``_to_message``, the thread's ``_create_worker_consumer``);
``pyproject.toml`` pins the version and ``tests/unit/runtime/test_ingest.py`` checks they still exist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, KafkaException, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from stream.pipeline import Record

log = logging.getLogger(__name__)

CHUNK = 500
"""Records processed between two yields of the event loop."""


class BatchSink(Protocol):
    """Where the records of the batch topics go."""

    topics: frozenset[str]

    def add(self, records: list[Record]) -> None:
        """Process records (synchronously, no await: a rebalance cannot cut into it)."""

    async def after_fetch(self) -> None:
        """Give the sink a chance to wait (back-pressure) after each fetch."""

    async def drain(self) -> None:
        """Make everything processed so far durable and committed (partitions are about to move)."""


COMMITTED_TIMEOUT_S = 300.0


def stable_committed_offsets(
    config: dict[str, Any], group_id: str, tps: list[TP], read_committed: bool = True
) -> dict[TP, int]:
    """Return the group's committed offsets (-1: none), retrying until the broker answers for every one.

    aiokafka's offset fetch may answer with the offset from before a transaction that committed a moment
    ago (its markers not yet written); librdkafka's, under ``read_committed``, asks the broker for stable
    offsets only (KIP-447) and waits. A partition the broker cannot answer for yet (restarting, loading
    the group) is asked again: leaving it where it is could skip records.
    """
    isolation = "read_committed" if read_committed else "read_uncommitted"
    consumer = Consumer(
        {**config, "group.id": group_id, "enable.auto.commit": False, "isolation.level": isolation}
    )
    partitions = [TopicPartition(tp.topic, tp.partition) for tp in tps]
    deadline = time.monotonic() + COMMITTED_TIMEOUT_S
    try:
        while True:
            reason: object
            try:
                found = consumer.committed(partitions, timeout=30)
                failed = [p for p in found if p.error is not None]
                if not failed:
                    return {TP(p.topic, p.partition): p.offset if p.offset >= 0 else -1 for p in found}
                reason = failed[0].error
            except KafkaException as exc:
                reason = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot read the committed offsets of group {group_id}: {reason}")
            log.warning("committed offsets not readable yet (%s); asking again", reason)
            time.sleep(1.0)
    finally:
        consumer.close()


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread: committed records only and stable offsets under exactly-once."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if getattr(self.app, "read_committed", False):
            # Transactions of aborted batches (and their routed records) must never be read.
            consumer._isolation_level = "read_committed"
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset, a stable one under exactly-once.

        A batch-topic partition with no committed offset goes back to its beginning (the group's reset
        policy is earliest): aiokafka would leave it where it is, past any records fetched and dropped.
        """
        consumer = self._ensure_consumer()
        tps = [TP(tp.topic, tp.partition) for tp in consumer.assignment()]
        config: dict[str, Any] = getattr(self.app, "kafka_client_config", {})
        read_committed = bool(getattr(self.app, "read_committed", False))
        offsets = await asyncio.to_thread(
            stable_committed_offsets, config, self.app.conf.id, tps, read_committed
        )
        sink: BatchSink | None = getattr(self.app, "batch_sink", None)
        batch_topics = sink.topics if sink is not None else frozenset()

        async def seek() -> None:
            fresh = []
            for tp, offset in offsets.items():
                if offset >= 0:
                    consumer.seek(tp, offset)
                elif tp.topic in batch_topics:
                    fresh.append(AioTopicPartition(tp.topic, tp.partition))
            if fresh:
                await consumer.seek_to_beginning(*fresh)

        await self.call_thread(seek)
        return {tp: offset for tp, offset in offsets.items() if offset >= 0}


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a batch path for the topics of the app's ``batch_sink``."""

    @property
    def sink(self) -> BatchSink | None:
        """Return the app's batch sink (None until the worker is wired up)."""
        sink: BatchSink | None = getattr(self.app, "batch_sink", None)
        return sink

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Make the pending batch durable before the partitions go (its offsets are still ours)."""
        sink = self.sink
        if sink is not None:
            await sink.drain()
        await super().on_partitions_revoked(revoked)

    async def on_stop(self) -> None:
        """Flush and commit the pending batch before Faust stops the consumer."""
        sink = self.sink
        if sink is not None:
            try:
                await sink.drain()
            except Exception:
                log.exception("the last batch could not be flushed on stop; it will be replayed")
        await super().on_stop()

    async def _drain_messages(self, fetcher: Any) -> None:
        """Fetch until stopped: batch topics go to the sink, everything else to Faust."""
        sink = self.sink
        assert sink is not None, "app.batch_sink must be set before the app starts"
        batch_topics = sink.topics
        callback = cast(Callable[[Any], Awaitable[None]], self.callback)
        consumer_stopped = cast(Any, self)._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        monitor = self.app.monitor
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                generation = self.app.consumer_generation_id
                records, active = await self._wait_next_records(1.0)
                if not records or self.should_stop:
                    await asyncio.sleep(0)
                    continue
                if not self.flow_active:
                    await self.perform_seek()  # as Faust's getmany does when flow stopped mid-fetch
                    continue
                if self.app.consumer_generation_id != generation:
                    # Fetched across a rebalance: drop the records, and rewind, since the fetch may have
                    # started after the new assignment's seek and moved the positions past them.
                    await self.perform_seek()
                    continue
                batch: list[Record] = []
                others: list[tuple[TP, Any]] = []
                for tp, tp_records in records.items():
                    if active is not None and tp not in active:
                        continue
                    monitor.track_tp_end_offset(tp, self.highwater(tp))
                    if tp.topic in batch_topics:
                        batch.extend(
                            Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp or 0)
                            for r in tp_records
                        )
                    else:
                        others.extend((tp, r) for r in tp_records)
                for start in range(0, len(batch), CHUNK):
                    if start:
                        # Yield between chunks, so the flusher's continuations are not held up for a whole
                        # fetch (~45 µs a record); a rebalance may begin meanwhile: then drop the rest.
                        await asyncio.sleep(0)
                        if self.app.consumer_generation_id != generation or not self.flow_active:
                            await self.perform_seek()
                            others.clear()
                            break
                    sink.add(batch[start : start + CHUNK])
                for tp, r in others:
                    await self.wait_first(callback(self._to_message(tp, r)), self.suspend_flow.wait())
                await sink.after_fetch()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("broker stopped the consumer; shutting down")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with the batch consumer."""

    Consumer = BatchConsumer
