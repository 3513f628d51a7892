"""Own the batch lifecycle: process fetched records, flush batches, commit their input offsets.

The ingest path (stream/runtime/ingest.py) hands each fetch's records to ``BatchFlusher.add``, which runs
them through the pipeline into the current batch. A background task flushes the batch when it is full or
when the batch window passes, while the next one fills:

- ``exactly_once``: one Kafka transaction holds the batch's outputs (awards, badges, credits, forwards,
  dead letters), its state changelog records and its input offsets; then the states go to RocksDB.
- ``at_least_once``: outputs are sent and acknowledged, then the changelog records, then the input
  offsets are committed; then the states go to RocksDB.

An input offset is committed only with (or after) everything its records produced, by this code and never
by Faust: the batch records are never acknowledged to Faust. On revoke and on stop the pending batch is
flushed first (``drain``), so a partition moves with everything before its committed offset done. A crash
before the commit replays the batch from the last committed state: under ``exactly_once`` its first
attempt was aborted; under ``at_least_once`` it yields the same ids again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import faust
from faust.types import TP

from stream.domains.economy import BAND, week_points
from stream.domains.invitations import PAID
from stream.engine.layout import StateFormatError
from stream.engine.processor import IGNORED
from stream.pipeline import Batch, Output, Pipeline, Record
from stream.runtime import metrics
from stream.runtime.faults import FaultInjector
from stream.runtime.output import OutputProducer, Rejection, group_metadata

log = logging.getLogger(__name__)

GC_FREEZE_EVERY_S = 1.0
GC_FULL_EVERY_S = 900.0


@dataclass(slots=True)  # not frozen: built per changed key, and a frozen __init__ costs ~6x
class _ChangelogRecord:
    """The fields of a changelog message that ``Store.apply_changelog_batch`` reads."""

    tp: TP
    offset: int
    partition: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class _Applied:
    message: _ChangelogRecord


def _same(value: Any) -> Any:
    return value


class Guarantee(Protocol):
    """How a batch becomes durable together with its input offsets."""

    async def start(self) -> None:
        """Prepare the producer (exactly once: register the transactional id)."""

    async def commit(
        self, outputs: list[Output], changelog: list[Output], offsets: dict[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]:
        """Make outputs, changelog and input offsets durable; return the last offset written per partition."""


class AtLeastOnce:
    """Outputs first, then the changelog, then the input offsets: a crash repeats, never loses."""

    def __init__(
        self, app: faust.App, output: OutputProducer, substitute: Callable[[Rejection], Output]
    ) -> None:
        self.app, self.output, self.substitute = app, output, substitute

    async def start(self) -> None:
        """Nothing to prepare."""

    async def commit(
        self, outputs: list[Output], changelog: list[Output], offsets: dict[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]:
        """Send outputs, then the changelog, each acknowledged; then commit the input offsets."""
        await self.output.publish(outputs, self.substitute)
        written = await self.output.publish(changelog, self.substitute)
        if offsets:
            consumer: Any = self.app.consumer
            committed = await consumer._commit({TP(t, p): o for (t, p), o in offsets.items()})
            if not committed:
                log.warning("input offsets not committed (rebalancing): the batch may be replayed")
        return written


class ExactlyOnce:
    """One Kafka transaction per batch: outputs, changelog and input offsets commit or abort together."""

    def __init__(
        self,
        app: faust.App,
        output: OutputProducer,
        substitute: Callable[[Rejection], Output],
        instance_id: str | None,
    ) -> None:
        self.app, self.output, self.substitute, self.instance_id = app, output, substitute, instance_id

    async def start(self) -> None:
        """Register the transactional id: fences an older instance and aborts its open transaction."""
        await self.output.init_transactions()

    def group_metadata(self) -> bytes:
        """Return the consuming member's group metadata, so the broker fences a zombie by generation."""
        consumer: Any = self.app.consumer
        coordinator = consumer._thread._ensure_consumer()._coordinator
        return group_metadata(
            self.app.conf.id, coordinator.generation, coordinator.member_id, self.instance_id
        )

    async def commit(
        self, outputs: list[Output], changelog: list[Output], offsets: dict[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]:
        """Send outputs and changelog and commit the input offsets in one transaction."""
        return await self.output.transact(
            [*outputs, *changelog], offsets, self.group_metadata, self.substitute
        )


class BatchFlusher:
    """Fill batches from fetched records, flush them on size or time, stop the worker when one fails."""

    def __init__(
        self,
        app: faust.App,
        table: Any,
        pipeline: Pipeline,
        guarantee: Guarantee,
        batch_max: int,
        window_s: float,
        faults: FaultInjector,
        before_batch: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.before_batch = before_batch  # e.g. add the rules versions published since the last fetch
        self.table = table
        self.changelog: str = table.changelog_topic.get_topic_name()
        self.pipeline = pipeline
        self.guarantee = guarantee
        self.batch_max = batch_max
        self.window_s = window_s
        self.faults = faults
        self.topics = frozenset([*pipeline.topics.sources, pipeline.topics.routed])
        self.lock = asyncio.Lock()
        self._full = asyncio.Event()
        self._ready = asyncio.Event()  # set once the guarantee is prepared (transactional id registered)
        self._failed = False
        self._crashing: asyncio.Future[None] | None = None
        self._band: dict[str, tuple[int, int]] = {}  # week -> (users inside the band, users) seen here

    # --- the BatchSink side (called by the ingest path) ---------------------------------------------------

    def add(self, records: list[Record]) -> None:
        """Process fetched records into the current batch.

        A ``StateFormatError`` (state this worker cannot read) crashes the worker with its message.
        """
        if self.before_batch is not None:
            self.before_batch()
        process = self.pipeline.process
        try:
            for record in records:
                process(record)
        except StateFormatError as exc:
            self._failed = True
            log.critical("stopping: %s", exc)
            self._crashing = asyncio.ensure_future(self.app.crash(exc))
            raise
        if self.pipeline.pending >= self.batch_max:
            self._full.set()

    async def after_fetch(self) -> None:
        """Hold the fetch loop while the batch is twice its size (the flusher is behind)."""
        if self.pipeline.pending >= 2 * self.batch_max:
            await self._flush_or_crash()

    async def drain(self) -> None:
        """Flush what is pending and forget cached states (partitions are moving, or the worker stops)."""
        if await self._flush_or_crash():
            self.pipeline.forget()

    # --- flushing ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Prepare the guarantee, then flush whenever a batch is full or the window passes."""
        await self.guarantee.start()
        self._ready.set()
        collector = _Collector()
        while not self._failed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.window_s)
            self._full.clear()
            if self.before_batch is not None:
                # Also when no input arrives: a version published to an idle worker is known at once
                # (GET /rules, /health) instead of at the next fetched record.
                self.before_batch()
            if self.pipeline.pending:
                await self._flush_or_crash()
            collector.step()

    async def _flush_or_crash(self) -> bool:
        """Flush; on failure stop the worker, so that the uncommitted batch is replayed on restart.

        Going on instead would leave the cached states ahead of what was committed.
        """
        if self._failed:
            return False
        try:
            await self.flush()
        except Exception as exc:
            self._failed = True
            log.exception("flush failed; stopping the worker so the batch is replayed")
            await self.app.crash(exc)
            return False
        return True

    async def flush(self) -> None:
        """Make the current batch durable with its input offsets, then store its states.

        Waits until the guarantee is prepared: records can arrive, and fill a batch, before the
        transactional id is registered (a restart waits for its predecessor's transaction to be aborted).
        """
        if not self.pipeline.pending:
            return
        await self._ready.wait()
        async with self.lock:
            if not self.pipeline.pending:
                return
            started = time.perf_counter()
            batch = self.pipeline.take_batch()
            self.faults.next_batch()
            changelog = [
                Output(self.changelog, key, value, batch.last[partition], partition=partition)
                for key, (partition, value) in batch.changes.items()
            ]
            written = await self.guarantee.commit(batch.outputs, changelog, batch.offsets)
            self.faults.reached("durable")
            self._apply(batch, written)
            self.faults.reached("applied")
            self.pipeline.trim()
            try:  # the batch is durable and applied: a failure to count it must not stop the worker
                if batch.reported:
                    self._observe_economy(batch.reported)
                _observe(batch, time.perf_counter() - started, self.pipeline.topics.routed)
            except Exception:
                log.exception("recording a flushed batch in the metrics failed (the batch itself is done)")
                metrics.METRICS_ERRORS.inc()

    def _observe_economy(self, reported: list[tuple[int, str]]) -> None:
        """Observe each user's points of weeks now closed everywhere, per partition (one scan each)."""
        for partition, week in reported:
            points = week_points(self.pipeline.cache.scan(partition, b""), week)
            for value in points.values():
                metrics.WEEKLY_POINTS.observe(value)
            inside, total = self._band.get(week, (0, 0))
            inside += sum(1 for value in points.values() if BAND[0] <= value <= BAND[1])
            self._band[week] = (inside, total + len(points))
        latest = max(self._band)
        inside, total = self._band[latest]
        metrics.BAND_SHARE.set(inside / total if total else 0.0)
        for week in sorted(self._band)[:-4]:
            del self._band[week]

    def _apply(self, batch: Batch, written: dict[tuple[str, int], int]) -> None:
        """Write the batch's changed keys to RocksDB as recovery would, recording the changelog offsets.

        One RocksDB write batch per partition (the store's ``apply_changelog_batch``; a None value deletes);
        the offset recorded per partition is the batch's last changelog offset there, so recovery reads
        only what is newer.
        """
        if not batch.changes:
            return
        changelog = self.changelog
        where = {  # partition -> (its changelog TP, the batch's last offset there), built once per batch
            partition: (TP(changelog, partition), offset)
            for (topic, partition), offset in written.items()
            if topic == changelog
        }
        applied = [
            _Applied(_ChangelogRecord(where[partition][0], where[partition][1], partition, key, value))
            for key, (partition, value) in batch.changes.items()
            if partition in where
        ]
        self.table.data.apply_changelog_batch(applied, to_key=_same, to_value=_same)


class _Collector:
    """Keep full garbage collections off the event loop's critical path.

    Cached states are long-lived; a full collection scanning them paused the loop 110-200 ms. Every second
    the young generations are collected (a few milliseconds) and everything alive is frozen (``gc.freeze``),
    so automatic collections only scan what is newer. Frozen objects are still freed by reference
    counting; only cyclic garbage among them waits for the full collection run every 15 minutes.
    """

    def __init__(self) -> None:
        now = time.monotonic()
        self.frozen_at = self.full_at = now

    def step(self) -> None:
        now = time.monotonic()
        if now - self.full_at > GC_FULL_EVERY_S:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.full_at = self.frozen_at = now
        elif now - self.frozen_at > GC_FREEZE_EVERY_S:
            gc.collect(1)
            gc.freeze()
            self.frozen_at = now


def _internal_kind(value: bytes | None) -> str:
    """Return the kind of an internal-topic message from its first JSON key (``credit``, ``gc``, ...)."""
    if not value or value[:2] != b'{"':
        return "other"
    end = value.find(b'"', 2)
    kind = value[2:end].decode(errors="replace") if 2 < end < 12 else "other"
    return "forward" if kind == "topic" else kind


def _observe(batch: Batch, seconds: float, routed: str = "") -> None:
    """Record a flushed batch in the metrics, one increment per label set."""
    internal_bytes: Counter[str] = Counter()
    for out in batch.outputs:
        if out.topic == routed:
            internal_bytes[_internal_kind(out.value)] += len(out.value or b"") + len(out.key or b"")
    for kind, n in internal_bytes.items():
        metrics.INTERNAL_BYTES.labels(kind).inc(n)
    for (kind, status), n in Counter(batch.internal).items():
        metrics.INTERNAL.labels(kind, status).inc(n)
    if batch.board_late:
        metrics.BOARD_LATE.inc(batch.board_late)
    metrics.BATCH_SECONDS.observe(seconds)
    metrics.STATE_BYTES.inc(sum(len(key) + len(value or b"") for key, (_p, value) in batch.changes.items()))
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
    taken_back: Counter[str] = Counter()  # revocations: a counter never goes down
    now = time.time()
    latency = metrics.LATENCY.observe
    for out, rule, kind, amount in batch.awards:
        awards[(rule, kind)] += 1
        if amount > 0:
            points[rule] += amount
        elif amount < 0:
            taken_back[rule] -= amount
        latency(max(0.0, now - out.source.timestamp_ms / 1000))
    for (rule, kind), n in awards.items():
        metrics.AWARDS.labels(rule, kind).inc(n)
    for rule, n in points.items():
        metrics.POINTS.labels(rule).inc(n)
    for rule, n in taken_back.items():
        metrics.POINTS_TAKEN_BACK.labels(rule).inc(n)
    if batch.invites or batch.invite_rejected or batch.budget or batch.invite_late:
        _observe_invites(batch)


def _observe_invites(batch: Batch) -> None:
    """Record a batch's invitation funnel, points paid and taken back, rejections, budgets, late activity."""
    stages: Counter[tuple[str, str]] = Counter()
    paid: Counter[str] = Counter()
    taken_back: Counter[str] = Counter()
    for _day, channel, stage, n in batch.invites:
        if stage != PAID:
            stages[(channel, stage)] += n
        elif n > 0:
            paid[channel] += n
        elif n < 0:
            taken_back[channel] -= n
    for (channel, stage), n in stages.items():
        metrics.INVITE_FUNNEL.labels(channel, stage).inc(n)
    for channel, n in paid.items():
        metrics.INVITE_POINTS_PAID.labels(channel).inc(n)
    for channel, n in taken_back.items():
        metrics.INVITE_POINTS_TAKEN_BACK.labels(channel).inc(n)
    for (channel, reason), n in Counter(batch.invite_rejected).items():
        metrics.INVITE_REJECTED.labels(channel, reason).inc(n)
    latest: dict[str, tuple[int, int]] = {}
    for month, promised, budget in batch.budget:  # a month's promises only grow: its largest is the latest
        if month not in latest or promised >= latest[month][0]:
            latest[month] = (promised, budget)
    for month, (promised, budget) in latest.items():
        metrics.INVITE_BUDGET_PROMISED.labels(month).set(promised)
        metrics.INVITE_BUDGET_BURNT.labels(month).set(promised / budget if budget > 0 else 1.0)
    if batch.invite_late:
        metrics.INVITE_LATE.inc(batch.invite_late)
