"""Publish rules versions to the compacted topic ``rewards.rules`` and follow it in every worker.

A record's key is the version, its value ``{"version", "effective_from_ms", "published_at_ms", "text"}``
with the YAML text itself, so every worker compiles exactly what was validated. A worker reads the topic
to its end before it processes any event (a restart scores as before), then follows it: a version
published later is added to its book within a poll interval, without a restart.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from stream.rules.compiler import CompiledRules
from stream.rules.model import RulesError
from stream.rules.versions import RuleBook
from stream.runtime import metrics
from stream.runtime.kafka_config import librdkafka_config
from stream.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.1
# What a just-created topic's partitions answer until their leader is elected.
_NOT_READY = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._TIMED_OUT,
    }
)


@dataclass(frozen=True, slots=True)
class Published:
    """One record of the rules topic."""

    version: str
    effective_from_ms: int
    published_at_ms: int
    text: str

    def encode(self) -> bytes:
        """Return the record's value."""
        return orjson.dumps(
            {
                "version": self.version,
                "effective_from_ms": self.effective_from_ms,
                "published_at_ms": self.published_at_ms,
                "text": self.text,
            }
        )

    @classmethod
    def decode(cls, value: bytes) -> Published:
        """Rebuild a record; raise ValueError or KeyError when it is not one."""
        doc = orjson.loads(value)
        return cls(
            str(doc["version"]), int(doc["effective_from_ms"]), int(doc["published_at_ms"]), str(doc["text"])
        )


def _consumer(settings: Settings) -> Consumer:
    config: dict[str, Any] = {
        **librdkafka_config(settings),
        "group.id": f"{settings.app_id}-rules-{uuid.uuid4().hex[:8]}",  # never commits: assign, not subscribe
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
    }
    return Consumer(config)


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        metadata = consumer.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
        found = metadata.topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return sorted(found.partitions)
        if time.monotonic() >= deadline:
            raise RulesError(f"the rules topic {topic!r} does not exist or has no partitions")
        time.sleep(0.2)


def read_published(settings: Settings, timeout: float = 30.0) -> list[Published]:
    """Return every version in the rules topic, in topic order (the latest record per version wins)."""
    consumer = _consumer(settings)
    try:
        topic = settings.topic_rules
        partitions = _partitions(consumer, topic, timeout)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        ends = {p: _high_watermark(consumer, TopicPartition(topic, p), deadline) for p in partitions}
        found: dict[str, Published] = {}
        positions = {p: 0 for p in partitions}
        while any(positions[p] < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise RulesError(
                    f"could not read the rules topic {topic!r} to its end within {timeout:.0f} s"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            error, partition = message.error(), message.partition() or 0
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    positions[partition] = ends[partition]
                    continue
                raise RulesError(f"reading the rules topic failed: {error.str()}")
            positions[partition] = (message.offset() or 0) + 1
            record = _decode(message.value())
            if record is not None:
                found[record.version] = record
        return list(found.values())
    finally:
        consumer.close()


def _high_watermark(consumer: Consumer, tp: TopicPartition, deadline: float) -> int:
    """Return a partition's end; retry while the broker is not ready to say (a topic created just now)."""
    while True:
        try:
            _low, high = consumer.get_watermark_offsets(tp, timeout=max(0.1, deadline - time.monotonic()))
            return int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if (error is not None and not error.retriable() and error.code() not in _NOT_READY) or (
                time.monotonic() >= deadline
            ):
                raise RulesError(f"could not read the end of the rules topic {tp.topic!r}: {exc}") from exc
            time.sleep(0.2)


def _decode(value: bytes | None) -> Published | None:
    if value is None:
        return None  # a tombstone: compaction removes the version's record; versions are never withdrawn
    try:
        return Published.decode(value)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("ignoring a record of the rules topic that is not a rules version: %s", exc)
        metrics.RULES_REJECTED.inc()
        return None


def publish(settings: Settings, compiled: CompiledRules, text: str, *, timeout: float = 30.0) -> Published:
    """Write a validated version to the rules topic and wait until it is acknowledged."""
    record = Published(compiled.version, compiled.effective_from_ms, int(time.time() * 1000), text)
    errors: list[str] = []
    producer = Producer({**librdkafka_config(settings), "enable.idempotence": True, "acks": "all"})

    def delivered(error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            errors.append(error.str())

    producer.produce(
        settings.topic_rules, key=compiled.version.encode(), value=record.encode(), on_delivery=delivered
    )
    left = producer.flush(timeout)
    if left or errors:
        raise RulesError(
            f"publishing to {settings.topic_rules!r} failed: {errors[0] if errors else 'timed out'}"
        )
    return record


def add_published(book: RuleBook, records: list[Published]) -> list[str]:
    """Add published versions to ``book``; return the versions added. An invalid one is logged and skipped."""
    added = []
    for record in records:
        try:
            if book.add_text(record.text, f"{record.version} (rules topic)"):
                added.append(record.version)
        except RulesError as exc:
            log.error("ignoring rules version %s from the rules topic: %s", record.version, exc)
            metrics.RULES_REJECTED.inc()
    return added


class RulesFollower:
    """Follow the rules topic in a thread; the worker's loop adds what arrived with ``apply``.

    Starts at the end read by ``read_published`` at start-up; only the loop thread changes the book.
    """

    def __init__(self, settings: Settings, book: RuleBook) -> None:
        self.settings = settings
        self.book = book
        self.arrived: queue.SimpleQueue[Published] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-follower", daemon=True)

    def start(self) -> None:
        """Start following from the topic's beginning (versions already known are recognised and skipped)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()

    def apply(self) -> None:
        """Add the versions that arrived since the last call (on the worker's loop)."""
        records = []
        while True:
            try:
                records.append(self.arrived.get_nowait())
            except queue.Empty:
                break
        for version in add_published(self.book, records):
            log.info(
                "rules version %s is now known (effective from %d)",
                version,
                self.book.get(version).effective_from_ms,
            )
            metrics.RULES_VERSION.labels(version).set(1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:
                log.exception("following the rules topic failed; retrying")
                self._stop.wait(1.0)

    def _follow(self) -> None:
        consumer = _consumer(self.settings)
        try:
            topic = self.settings.topic_rules
            partitions = _partitions(consumer, topic, 30.0)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._stop.is_set():
                message = consumer.poll(POLL_S)
                if message is None or message.error() is not None:
                    continue
                record = _decode(message.value())
                if record is not None:
                    self.arrived.put(record)
        finally:
            consumer.close()
