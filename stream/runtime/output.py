"""Publish the worker's output records through librdkafka: plainly, or in one transaction per batch.

Faust's own producer (aiokafka, pure Python) costs tens of microseconds per record; awards, changelog
records, credits and dead letters go through confluent-kafka instead. Keys are hashed with murmur2 like
Kafka's Java client and aiokafka, so a record keyed by a user lands on the partition that user's state
lives on; an output with an explicit partition (a changelog record) goes exactly there.

Every blocking librdkafka call runs on one dedicated thread, so the event loop keeps consuming and the
calls of one batch never interleave with another's. Failures are sorted in three:

- *rejected* (the broker or the client refuses this record for good: too large, invalid): the record
  is replaced by a bounded dead letter with reason ``output_rejected`` and the batch goes on;
- *transient* (broker down, time-outs): retried with back-off until it succeeds, losing nothing;
- *fatal* (fenced by a newer instance, misconfiguration): ``FatalProducerError``, the worker stops.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from stream.pipeline import Output

log = logging.getLogger(__name__)

REJECTED_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError._INVALID_ARG,
    }
)
"""Errors that no retry can cure for this record: it becomes a dead letter instead."""

MAX_BACKOFF_S = 5.0
STALL_S = 45.0
"""A transactional call still unanswered after this long is wedged (its own 30 s time-out passed)."""


class _Lane:
    """One daemon thread running blocking calls in order; a wedged lane is abandoned, never joined."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
        ]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        while True:
            job, loop, future = self._jobs.get()
            try:
                result = job()
            except Exception as exc:  # noqa: BLE001 - not swallowed: the awaiting coroutine raises it
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    def submit(self, job: Callable[[], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((job, loop, future))
        return future


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class FatalProducerError(RuntimeError):
    """Raised when the producer cannot go on (fenced, misconfigured): the worker must stop."""


class _TransactionFailed(Exception):
    """A transaction attempt failed; ``commit_requested`` says whether it may have committed anyway."""

    def __init__(self, error: KafkaError, commit_requested: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.commit_requested = commit_requested


FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
"""A newer instance registered this transactional id: this one is a zombie and must stop."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """An output the broker or client refused for good, and why."""

    output: Output
    error: str


Substitute = Callable[[Rejection], Output]
"""Turn a rejected output into the record to send instead (a bounded dead letter)."""


def _is_rejection(error: KafkaError) -> bool:
    return error.code() in REJECTED_CODES


class _Round:
    """The outcome of handing one list of outputs to librdkafka and waiting for every report."""

    __slots__ = ("_by_content", "failed", "offsets", "outputs")

    def __init__(self, outputs: Sequence[Output]) -> None:
        self.outputs = outputs
        self.offsets: dict[tuple[str, int], int] = {}
        self.failed: list[tuple[Output, KafkaError]] = []
        self._by_content: dict[tuple[str, bytes | None, bytes | None], list[Output]] | None = None

    def on_delivery(self, error: KafkaError | None, message: Any) -> None:
        if error is None:
            where = (message.topic(), message.partition())
            offset = message.offset()
            if offset > self.offsets.get(where, -1):
                self.offsets[where] = offset
            return
        self.failed.append((self._find(message), error))

    def _find(self, message: Any) -> Output:
        """Return the output a failed report is about (rare: the index is built on first failure)."""
        if self._by_content is None:
            self._by_content = {}
            for out in self.outputs:
                self._by_content.setdefault((out.topic, out.key, out.value), []).append(out)
        candidates = self._by_content.get((message.topic(), message.key(), message.value()))
        if not candidates:
            raise FatalProducerError(f"a delivery report names a record never sent to {message.topic()}")
        return candidates.pop()


class OutputProducer:
    """Send batches of outputs, plainly (at least once) or in one Kafka transaction each (exactly once)."""

    def __init__(self, config: dict[str, Any], *, transactional_id: str | None = None) -> None:
        base = {
            "partitioner": "murmur2_random",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "queue.buffering.max.messages": 1_000_000,
            "message.timeout.ms": 0,  # at least once: librdkafka retries until delivered
            **config,
        }
        if transactional_id is not None:
            base["transactional.id"] = transactional_id
            base.setdefault("transaction.timeout.ms", 30_000)
            base["message.timeout.ms"] = base["transaction.timeout.ms"]
        self.on_sent: Callable[[], None] | None = None  # called once a round's records are all handed over
        self._make: Callable[[], Producer] = lambda: Producer(base)
        self._producer = self._make()
        self._abandoned: list[Producer] = []
        self._lane = _Lane("output-producer")
        self._stage: tuple[str, float] = ("idle", time.monotonic())  # what the lane is blocked in, since

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._lane.submit(functools.partial(fn, *args))

    def _enter(self, stage: str) -> None:
        self._stage = (stage, time.monotonic())

    # --- one round: produce every output, wait for every report ---------------------------------------

    def _round(
        self, outputs: Sequence[Output], *, wait: bool = True, producer: Producer | None = None
    ) -> _Round:
        """Hand every output to librdkafka; with ``wait``, also wait for every delivery report."""
        producer = producer or self._producer
        result = _Round(outputs)
        produce, poll, on_delivery = producer.produce, producer.poll, result.on_delivery
        for out in outputs:
            while True:
                try:
                    if out.partition is None:
                        produce(
                            out.topic,
                            out.value,
                            out.key,
                            timestamp=out.timestamp_ms or 0,
                            on_delivery=on_delivery,
                        )
                    else:
                        produce(
                            out.topic,
                            out.value,
                            out.key,
                            partition=out.partition,
                            timestamp=out.timestamp_ms or 0,
                            on_delivery=on_delivery,
                        )
                    break
                except BufferError:
                    poll(0.05)  # the local queue is full: serve delivery reports, then retry
                except KafkaException as exc:  # refused before sending (e.g. larger than message.max.bytes)
                    result.failed.append((out, exc.args[0]))
                    break
        if self.on_sent is not None:
            self.on_sent()
        if wait:
            self._wait(producer)
        return result

    def _wait(self, producer: Producer) -> None:
        """Wait until librdkafka reported on every record handed to it (serving the reports)."""
        while producer.flush(30.0):
            log.warning("outputs still unacknowledged after 30 s; waiting (the broker may be down)")

    def _sort(self, round_: _Round, substitute: Substitute) -> tuple[list[Output], list[Output], bool]:
        """Split a round's failures into replacements (dead letters), retries, and whether any is fatal."""
        replacements: list[Output] = []
        retries: list[Output] = []
        fatal = False
        for out, error in round_.failed:
            if _is_rejection(error):
                log.error("output to %s rejected for good (%s): sent as a dead letter", out.topic, error)
                replacements.append(substitute(Rejection(out, str(error))))
            else:
                fatal = fatal or error.fatal()
                log.warning("output to %s failed (%s): retrying", out.topic, error)
                retries.append(out)
        return replacements, retries, fatal

    # --- at least once ----------------------------------------------------------------------------------

    async def publish(self, outputs: Sequence[Output], substitute: Substitute) -> dict[tuple[str, int], int]:
        """Send ``outputs`` until Kafka acknowledged each (or its dead letter); return last offsets.

        Transient failures are retried with back-off for as long as it takes.
        """
        offsets: dict[tuple[str, int], int] = {}
        pending: Sequence[Output] = outputs
        backoff = 0.1
        while pending:
            round_ = await self._call(self._round, pending)
            for where, offset in round_.offsets.items():
                offsets[where] = max(offset, offsets.get(where, -1))
            replacements, retries, fatal = self._sort(round_, substitute)
            if fatal:
                raise FatalProducerError(f"producer failed fatally: {round_.failed[0][1]}")
            if retries:
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
            pending = replacements + retries
        return offsets

    # --- exactly once -----------------------------------------------------------------------------------

    async def init_transactions(self, timeout_s: float = 60.0) -> None:
        """Register the transactional id, fencing any older producer of it and aborting its transaction."""
        backoff = 0.5
        while True:
            try:
                await self._call(self._producer.init_transactions, timeout_s)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal() or not error.retriable():
                    raise FatalProducerError(f"cannot initialise transactions: {error}") from exc
                log.warning("init_transactions failed (%s); retrying in %.1f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    async def transact(
        self,
        outputs: Sequence[Output],
        offsets: dict[tuple[str, int], int],
        group_metadata: Callable[[], bytes],
        substitute: Substitute,
    ) -> dict[tuple[str, int], int]:
        """Send ``outputs`` and commit the input ``offsets`` in one transaction; return last offsets.

        A rejected output aborts the attempt and is replaced by its dead letter in the next; a transient
        failure aborts or retries as librdkafka says. Only a fatal error (e.g. fenced by a newer instance
        with the same transactional id, or by the group) raises.
        """
        pending = list(outputs)
        positions = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()
        ]
        backoff = 0.1
        while True:
            try:
                done = await self._watched(self._call(self._attempt, pending, positions, group_metadata))
            except _TransactionFailed as failure:
                error = failure.error
                if error.code() in FENCED_CODES:
                    raise FatalProducerError(f"fenced by a newer instance: {error}") from failure
                if failure.commit_requested and not error.txn_requires_abort():
                    # The commit may have reached the coordinator: redoing the batch could publish it twice.
                    # (An error that requires an abort says it did not commit.)
                    raise FatalProducerError(
                        f"the outcome of a transaction commit is unknown ({error}); stopping, so that the "
                        "restart resumes from what Kafka committed"
                    ) from failure
                # librdkafka can wedge after a failed transactional call (a second send_offsets_to_transaction
                # after a time-out blocked for good): start over with a new producer of the same id, which
                # aborts the failed transaction, and redo the batch.
                log.warning(
                    "transaction failed (%s); redoing the batch with a new producer in %.1f s", error, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                await self._call(self._replace_producer)
                await self.init_transactions()
                continue
            if isinstance(done, dict):
                return done
            replacements, retries, fatal = self._sort(done, substitute)
            if fatal:
                raise FatalProducerError(f"producer failed fatally: {done.failed[0][1]}")
            failed = {id(out) for out, _ in done.failed}
            pending = [out for out in pending if id(out) not in failed] + replacements + retries
            if retries:
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    async def _watched(self, attempt: Any) -> Any:
        """Await a transaction attempt; if librdkafka wedges in it, abandon the lane and the producer.

        A wedged call (seen: ``send_offsets_to_transaction`` ignoring its time-out after a broker restart)
        can neither be interrupted nor reused. Before the commit was requested it is treated as a failed
        attempt: a new producer with the same transactional id aborts it and the batch is redone. A wedged
        commit is of unknown outcome, so the worker stops instead.
        """
        future = asyncio.ensure_future(attempt)
        while True:
            done, _ = await asyncio.wait({future}, timeout=1.0)
            if done:
                return future.result()
            stage, since = self._stage
            if stage in ("offsets", "commit") and time.monotonic() - since > STALL_S:
                future.cancel()
                log.error("librdkafka wedged in %s for %.0f s: abandoning the producer", stage, STALL_S)
                self._lane = _Lane("output-producer")
                raise _TransactionFailed(
                    KafkaError(KafkaError._TIMED_OUT, retriable=True), commit_requested=stage == "commit"
                )

    def _attempt(
        self, outputs: Sequence[Output], positions: list[TopicPartition], group_metadata: Callable[[], bytes]
    ) -> dict[tuple[str, int], int] | _Round:
        """Run one transaction; return the offsets written, or the failed round after aborting it.

        The offsets are sent and the commit requested while the records are still on their way (the
        commit waits for them): a record that fails makes the commit fail, and the round says which.
        Any other failure raises ``_TransactionFailed``.
        """
        producer = self._producer
        commit_requested = False
        try:
            self._enter("produce")
            producer.begin_transaction()
            round_ = self._round(outputs, wait=False, producer=producer)
            if round_.failed:  # refused before sending
                producer.abort_transaction(30.0)
                return round_
            try:
                if positions:
                    self._enter("offsets")
                    producer.send_offsets_to_transaction(positions, group_metadata(), 30.0)
                commit_requested = True
                self._enter("commit")
                producer.commit_transaction(30.0)
            except KafkaException:
                self._enter("deliveries")
                self._wait(producer)
                if any(_is_rejection(error) for _, error in round_.failed):
                    producer.abort_transaction(30.0)
                    return round_
                raise
            finally:
                self._enter("deliveries")
        except KafkaException as exc:
            raise _TransactionFailed(exc.args[0], commit_requested) from exc
        self._wait(producer)  # serve the delivery reports: the offsets of the changelog records
        self._enter("idle")
        return round_.offsets

    def _replace_producer(self) -> None:
        """Drop the current producer (purged, kept referenced: destroying a wedged one can block)."""
        old = self._producer
        try:
            old.purge(in_queue=True, in_flight=True, blocking=False)
        except (KafkaException, RuntimeError) as exc:
            log.warning("purging the old producer: %s", exc)
        self._abandoned.append(old)
        self._producer = self._make()

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is queued and release the client."""
        self._producer.flush(timeout)


def group_metadata(group_id: str, generation: int, member_id: str, instance_id: str | None) -> bytes:
    """Return librdkafka's serialised consumer group metadata for a member of another client's group.

    The transactional producer commits input offsets with ``send_offsets_to_transaction``, which wants the
    consuming member's group metadata so the broker can fence a zombie by its generation (KIP-447). Faust's
    consumer is aiokafka's, which librdkafka cannot ask; this builds the same bytes
    ``Consumer.consumer_group_metadata()`` returns (magic, int32 generation, NUL-terminated group id and
    member id, then the instance id or a null flag). ``tests/unit/runtime`` checks it against librdkafka.
    """
    out = bytearray(b"CGMDv2:")
    out += generation.to_bytes(4, sys.byteorder, signed=True)
    out += group_id.encode() + b"\0"
    out += member_id.encode() + b"\0"
    if instance_id is None:
        out += b"\x01"
    else:
        out += b"\x00" + instance_id.encode() + b"\0"
    return bytes(out)
