"""Recover tables from changelogs that transactions wrote: stop at the last committed record.

Faust's recovery reads a changelog partition until it has seen the offset before the partition's end.
A transactional changelog ends with a commit or abort marker, which no consumer ever receives, and may
end with records of an aborted transaction, which a ``read_committed`` consumer skips: Faust would wait
for them forever. Here the end of each changelog partition is instead the offset of its last record a
``read_committed`` consumer can read, found by scanning back from the partition's end.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

log = logging.getLogger(__name__)

FIRST_WINDOW = 512


def last_committed_offsets(
    config: dict[str, Any], tps: Iterable[TP], timeout_s: float = 30.0
) -> dict[TP, int]:
    """Return, for each partition, the offset of its last record a ``read_committed`` reader sees (-1: none)."""
    consumer = Consumer(
        {
            **config,
            "group.id": f"recovery-probe-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        return {tp: _last_committed(consumer, tp, timeout_s) for tp in tps}
    finally:
        consumer.close()


def _last_committed(consumer: Consumer, tp: TP, timeout_s: float) -> int:
    low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout_s)
    end, window = high, FIRST_WINDOW
    while end > low:
        start = max(low, end - window)
        last = _scan(consumer, tp, start, end, timeout_s)
        if last >= 0:
            return last
        end, window = start, window * 8
    return -1


def _scan(consumer: Consumer, tp: TP, start: int, end: int, timeout_s: float) -> int:
    """Return the last readable offset in [start, end), -1 when there is none."""
    consumer.assign([TopicPartition(tp.topic, tp.partition, start)])
    last = -1
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return last
                    raise RuntimeError(f"reading {tp.topic}[{tp.partition}] for recovery: {error}")
                offset = message.offset()
                if offset is None:
                    continue
                if offset >= end:
                    return last
                last = offset
            position = consumer.position([TopicPartition(tp.topic, tp.partition)])[0].offset
            if position >= end:
                return last
        raise TimeoutError(f"reading {tp.topic}[{tp.partition}] for recovery took over {timeout_s} s")
    finally:
        consumer.unassign()


class CommittedRecovery(Recovery):
    """Faust's recovery, with each changelog's end at its last committed record."""

    async def _build_highwaters(self, consumer: Any, tps: set[TP], destination: Any, title: str) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        if not tps:
            return
        config: dict[str, Any] = getattr(self.app, "kafka_client_config", {})
        ends = await asyncio.to_thread(last_committed_offsets, config, tps)
        changed = {tp: (destination.get(tp), end) for tp, end in ends.items() if destination.get(tp) != end}
        if changed:
            log.info("%s changelog ends at their last committed records: %s", title, changed)
        for tp, end in ends.items():
            destination[tp] = end  # a Counter: update() would add


class CommittedTableManager(TableManager):
    """Faust's table manager with ``CommittedRecovery``."""

    @property
    def recovery(self) -> Recovery:
        """Return the recovery service, created on first use."""
        if self._recovery is None:
            self._recovery = CommittedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
