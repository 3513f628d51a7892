"""The private parts of faust-streaming the runtime relies on are still there (pinned 0.15.x).

The batch path (stream/runtime/ingest.py), the committed-end recovery (recovery.py) and the static-member
assignor (membership.py) override or call these; a Faust upgrade that moves one must fail here first.
"""

from __future__ import annotations

import inspect

import faust
from faust.assignor import PartitionAssignor
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as driver

from stream.runtime.ingest import BatchConsumer, BatchConsumerThread, BatchTransport


def test_faust_version_is_the_pinned_one() -> None:
    assert faust.__version__.startswith("0.15.")


def test_consumer_internals_exist() -> None:
    for name in ("_drain_messages", "_wait_next_records", "_to_message", "perform_seek", "wait_first"):
        assert callable(getattr(Consumer, name, None)) or callable(getattr(driver.Consumer, name, None)), name
    assert list(inspect.signature(Consumer._wait_next_records).parameters) == ["self", "timeout"]
    assert "fetcher" in inspect.signature(Consumer._drain_messages).parameters
    assert callable(driver.AIOKafkaConsumerThread._create_worker_consumer)
    assert callable(driver.AIOKafkaConsumerThread._commit)


def test_recovery_and_assignor_internals_exist() -> None:
    assert list(inspect.signature(Recovery._build_highwaters).parameters) == [
        "self",
        "consumer",
        "tps",
        "destination",
        "title",
    ]
    source = inspect.getsource(PartitionAssignor.on_assignment)
    for attribute in (
        "_assignment",
        "_topic_groups",
        "_active_tps",
        "_standby_tps",
        "changelog_distribution",
    ):
        assert attribute in source, attribute


def test_batch_classes_plug_into_the_driver() -> None:
    assert BatchTransport.Consumer is BatchConsumer
    assert issubclass(BatchConsumer, driver.Consumer)
    assert issubclass(BatchConsumerThread, driver.AIOKafkaConsumerThread)
