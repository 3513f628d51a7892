"""Recovery's end of a transactional changelog: the last record a read_committed reader can see."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP

from stream.runtime.recovery import FIRST_WINDOW, last_committed_offsets

pytestmark = pytest.mark.e2e


@pytest.fixture
def topic(bootstrap: str) -> Iterator[str]:
    name = f"recovery-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result()
    deadline = time.monotonic() + 30
    while not admin.list_topics(name, timeout=10).topics[name].partitions:  # until metadata knows it
        assert time.monotonic() < deadline, f"topic {name} never appeared in the metadata"
        time.sleep(0.1)
    yield name
    admin.delete_topics([name])


def _transaction(producer: Producer, topic: str, n: int, *, commit: bool) -> None:
    producer.begin_transaction()
    for i in range(n):
        producer.produce(topic, f"v{i}".encode(), b"k")
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def _transactional(bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"probe-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    return producer


def test_empty_changelog_ends_before_its_start(bootstrap: str, topic: str) -> None:
    assert last_committed_offsets({"bootstrap.servers": bootstrap}, [TP(topic, 0)]) == {TP(topic, 0): -1}


def test_plain_changelog_ends_at_its_last_record(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        producer.produce(topic, b"v%d" % i, b"k")
    producer.flush(30)
    assert last_committed_offsets({"bootstrap.servers": bootstrap}, [TP(topic, 0)]) == {TP(topic, 0): 4}


@pytest.mark.parametrize("aborted", [3, FIRST_WINDOW * 3])
def test_transactional_changelog_ends_at_its_last_committed_record(
    bootstrap: str, topic: str, aborted: int
) -> None:
    producer = _transactional(bootstrap)
    _transaction(producer, topic, 4, commit=True)  # offsets 0-3, then a commit marker (4)
    _transaction(producer, topic, aborted, commit=False)  # aborted records, then an abort marker
    assert last_committed_offsets({"bootstrap.servers": bootstrap}, [TP(topic, 0)]) == {TP(topic, 0): 3}
    _transaction(producer, topic, 2, commit=True)
    first_of_last = 4 + 1 + aborted + 1
    assert last_committed_offsets({"bootstrap.servers": bootstrap}, [TP(topic, 0)]) == {
        TP(topic, 0): first_of_last + 1
    }
