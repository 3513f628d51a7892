"""Publish the worker's output records through librdkafka and wait for Kafka's acknowledgement.

Faust's own producer (aiokafka, pure Python) costs tens of microseconds per record; awards, credits and
dead letters go through confluent-kafka instead. ``publish`` hands a batch to librdkafka and waits for
every delivery report in a worker thread, so the event loop keeps consuming meanwhile. Keys are hashed
with murmur2 like Kafka's Java client and aiokafka, so a record keyed by a user lands on the partition
that user's state lives on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, Producer

from stream.pipeline import Output


class DeliveryError(RuntimeError):
    """Raised when Kafka did not acknowledge every record of a batch."""


class OutputProducer:
    """Send batches of outputs and report when all of them are acknowledged."""

    def __init__(self, client_config: Mapping[str, str], client_id: str, **config: Any) -> None:
        """Connect with ``client_config`` (brokers and security, see kafka_config); ``config`` overrides."""
        self._errors: list[str] = []
        self._offsets: dict[tuple[str, int], int] = {}
        self._producer = Producer(
            {
                **client_config,
                "client.id": client_id,
                "partitioner": "murmur2_random",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                "queue.buffering.max.messages": 1_000_000,
                **config,
            }
        )

    def _on_delivery(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}: {error}")
            return
        where = (message.topic(), message.partition())
        offset = message.offset()
        if offset > self._offsets.get(where, -1):
            self._offsets[where] = offset

    def produce(self, outputs: Sequence[Output]) -> None:
        """Hand every output to librdkafka (non-blocking)."""
        produce, poll, on_delivery = self._producer.produce, self._producer.poll, self._on_delivery
        for out in outputs:
            while True:
                try:
                    produce(
                        out.topic,
                        out.value,
                        out.key,
                        timestamp=out.timestamp_ms or 0,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    poll(0.05)  # the local queue is full: serve delivery reports, then retry

    async def publish(self, outputs: Sequence[Output], timeout: float = 120.0) -> dict[tuple[str, int], int]:
        """Send ``outputs``, wait until Kafka acknowledged all, return the last offset per partition.

        Raise DeliveryError when any record failed or is still unacknowledged after ``timeout``.
        """
        if not outputs:
            return {}
        self.produce(outputs)
        remaining = await asyncio.get_running_loop().run_in_executor(None, self._producer.flush, timeout)
        offsets, self._offsets = self._offsets, {}
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryError(f"{remaining} records unacknowledged, {len(errors)} failed: {errors[:3]}")
        return offsets

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is queued and release the client."""
        self._producer.flush(timeout)
