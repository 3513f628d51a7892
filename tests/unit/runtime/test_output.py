"""The output producer: rejected records become dead letters, transient failures retry, transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException

from stream.pipeline import Output, Record
from stream.runtime.output import FatalProducerError, OutputProducer, Rejection, group_metadata

SOURCE = Record("in.messages", 0, 7, b"u1", b"{}", 0)


def out(value: bytes, topic: str = "out.points") -> Output:
    return Output(topic, b"u1", value, SOURCE)


class FakeMessage:
    def __init__(self, topic: str, key: bytes | None, value: bytes, partition: int, offset: int) -> None:
        self._t, self._k, self._v, self._p, self._o = topic, key, value, partition, offset

    def topic(self) -> str:
        return self._t

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes:
        return self._v

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class FakeProducer:
    """librdkafka's producer as far as OutputProducer uses it; ``fail`` decides each delivery's error."""

    def __init__(self, fail: Callable[[bytes, int], KafkaError | None] = lambda value, attempt: None) -> None:
        self.fail = fail
        self.calls: list[str] = []
        self.delivered: list[bytes] = []
        self.attempts: dict[bytes, int] = {}
        self._reports: list[tuple[Callable[..., None], KafkaError | None, FakeMessage]] = []
        self._next_offset = 0
        self.commit_errors: list[KafkaError] = []
        self.in_transaction: list[bytes] | None = None  # delivered in the open transaction

    def produce(self, topic: str, value: bytes, key: bytes | None, **kwargs: Any) -> None:
        attempt = self.attempts[value] = self.attempts.get(value, 0) + 1
        error = self.fail(value, attempt)
        if error is not None and error.code() == KafkaError.INVALID_MSG_SIZE:
            raise KafkaException(error)  # refused before sending, as librdkafka does for its own limits
        message = FakeMessage(topic, key, value, kwargs.get("partition", 0), self._next_offset)
        self._next_offset += 1
        self._reports.append((kwargs["on_delivery"], error, message))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        reports, self._reports = self._reports, []
        for callback, error, message in reports:
            if error is None:
                target = self.delivered if self.in_transaction is None else self.in_transaction
                target.append(message.value())
            callback(error, message)
        return 0

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init")
        self.in_transaction = None  # a new epoch aborts what the previous producer left open

    def purge(self, **kwargs: Any) -> None:
        self.calls.append("purge")
        self._reports.clear()

    def begin_transaction(self) -> None:
        self.calls.append("begin")
        self.in_transaction = []

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")
        self.in_transaction = None  # aborted records are never read
        reports, self._reports = self._reports, []
        for callback, _, message in reports:  # what was still queued is purged, and reported so
            callback(KafkaError(KafkaError._PURGE_QUEUE), message)

    def send_offsets_to_transaction(self, positions: list[Any], metadata: bytes, timeout: float) -> None:
        self.calls.append(f"offsets {[(p.topic, p.partition, p.offset) for p in positions]}")

    def commit_transaction(self, timeout: float) -> None:
        if any(error is not None for _, error, _ in self._reports):
            # A record of the transaction failed: the transaction can only be aborted. (Its delivery
            # reports are left for the caller's own flush to serve.)
            self.calls.append("commit failed")
            raise KafkaException(KafkaError(KafkaError._INCONSISTENT, txn_requires_abort=True))
        if self.commit_errors:
            self.calls.append("commit failed")
            raise KafkaException(self.commit_errors.pop(0))
        self.calls.append("commit")
        self.flush(0)
        self.delivered.extend(self.in_transaction or [])
        self.in_transaction = None


def producer_with(fake: FakeProducer, transactional: bool = False) -> OutputProducer:
    producer = OutputProducer(
        {"bootstrap.servers": "127.0.0.1:1"}, transactional_id="t-1" if transactional else None
    )
    producer._producer = fake  # type: ignore[assignment]
    producer._make = lambda: fake  # type: ignore[assignment,return-value]  # "a new producer": the same fake
    return producer


def dead_letter(rejection: Rejection) -> Output:
    return Output("out.dead", None, b"dead:" + rejection.output.value[:10], rejection.output.source)


def test_publish_replaces_a_rejected_record_with_its_dead_letter() -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    fake = FakeProducer(lambda value, attempt: too_large if len(value) > 100 else None)
    producer = producer_with(fake)
    asyncio.run(producer.publish([out(b"a"), out(b"x" * 500), out(b"b")], dead_letter))
    assert sorted(fake.delivered) == [b"a", b"b", b"dead:xxxxxxxxxx"]


def test_publish_replaces_a_record_refused_before_sending() -> None:
    fake = FakeProducer(
        lambda value, attempt: KafkaError(KafkaError.INVALID_MSG_SIZE) if value == b"big" else None
    )
    producer = producer_with(fake)
    asyncio.run(producer.publish([out(b"a"), out(b"big")], dead_letter))
    assert sorted(fake.delivered) == [b"a", b"dead:big"]


def test_publish_retries_transient_failures_until_delivered() -> None:
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    fake = FakeProducer(lambda value, attempt: timed_out if attempt < 3 else None)
    producer = producer_with(fake)
    offsets = asyncio.run(producer.publish([out(b"a"), out(b"b")], dead_letter))
    assert sorted(fake.delivered) == [b"a", b"b"]
    assert fake.attempts == {b"a": 3, b"b": 3}
    assert offsets == {("out.points", 0): 5}


def test_transaction_commits_outputs_with_offsets() -> None:
    fake = FakeProducer()
    producer = producer_with(fake, transactional=True)
    asyncio.run(producer.transact([out(b"a")], {("in.messages", 0): 8}, lambda: b"meta", dead_letter))
    assert fake.calls == ["begin", "offsets [('in.messages', 0, 8)]", "commit"]
    assert fake.delivered == [b"a"]


def test_transaction_with_a_rejected_record_is_aborted_and_redone_with_the_dead_letter() -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    fake = FakeProducer(lambda value, attempt: too_large if len(value) > 100 else None)
    producer = producer_with(fake, transactional=True)
    asyncio.run(
        producer.transact([out(b"a"), out(b"x" * 500)], {("in.messages", 0): 8}, lambda: b"m", dead_letter)
    )
    offsets = "offsets [('in.messages', 0, 8)]"
    assert fake.calls == ["begin", offsets, "commit failed", "abort", "begin", offsets, "commit"]
    assert sorted(fake.delivered) == [b"a", b"dead:xxxxxxxxxx"]


def test_transaction_with_a_record_refused_before_sending_is_aborted_at_once() -> None:
    fake = FakeProducer(
        lambda value, attempt: KafkaError(KafkaError.INVALID_MSG_SIZE) if value == b"big" else None
    )
    producer = producer_with(fake, transactional=True)
    asyncio.run(producer.transact([out(b"a"), out(b"big")], {}, lambda: b"m", dead_letter))
    assert fake.calls == ["begin", "abort", "begin", "commit"]
    assert sorted(fake.delivered) == [b"a", b"dead:big"]


def test_transaction_commit_that_needs_an_abort_is_redone_by_a_new_producer() -> None:
    fake = FakeProducer()
    fake.commit_errors = [KafkaError(KafkaError._TIMED_OUT, txn_requires_abort=True)]
    producer = producer_with(fake, transactional=True)
    asyncio.run(producer.transact([out(b"a")], {("in.messages", 0): 8}, lambda: b"m", dead_letter))
    offsets = "offsets [('in.messages', 0, 8)]"
    # The new producer's init_transactions aborts the failed transaction (same transactional id).
    assert fake.calls == ["begin", offsets, "commit failed", "purge", "init", "begin", offsets, "commit"]
    assert fake.delivered == [b"a"]


def test_a_commit_of_unknown_outcome_stops_rather_than_risk_publishing_twice() -> None:
    fake = FakeProducer()
    fake.commit_errors = [KafkaError(KafkaError._TIMED_OUT, retriable=True)]
    producer = producer_with(fake, transactional=True)
    with pytest.raises(FatalProducerError, match="outcome"):
        asyncio.run(producer.transact([out(b"a")], {}, lambda: b"m", dead_letter))


def test_a_failure_before_the_commit_is_redone_by_a_new_producer() -> None:
    fake = FakeProducer()
    failures = [KafkaError(KafkaError._TIMED_OUT, retriable=True)]

    def send_offsets(positions: list[Any], metadata: bytes, timeout: float) -> None:
        if failures:
            fake.calls.append("offsets failed")
            raise KafkaException(failures.pop())
        fake.calls.append("offsets")

    fake.send_offsets_to_transaction = send_offsets  # type: ignore[method-assign]
    producer = producer_with(fake, transactional=True)
    asyncio.run(producer.transact([out(b"a")], {("in.messages", 0): 8}, lambda: b"m", dead_letter))
    assert fake.calls == ["begin", "offsets failed", "purge", "init", "begin", "offsets", "commit"]
    assert fake.delivered == [b"a"]


def test_fenced_stops() -> None:
    fake = FakeProducer()
    fake.commit_errors = [KafkaError(KafkaError._FENCED, fatal=True)]
    producer = producer_with(fake, transactional=True)
    with pytest.raises(FatalProducerError):
        asyncio.run(producer.transact([out(b"a")], {}, lambda: b"m", dead_letter))


@pytest.mark.parametrize("instance", [None, "pod-3"])
def test_group_metadata_is_what_librdkafka_writes(instance: str | None) -> None:
    config = {"group.id": "im-rewards", "bootstrap.servers": "127.0.0.1:1"}
    if instance is not None:
        config["group.instance.id"] = instance
    consumer = Consumer(config)
    try:
        expected = consumer.consumer_group_metadata()
    finally:
        consumer.close()
    assert group_metadata("im-rewards", -1, "", instance) == expected


def test_group_metadata_carries_generation_and_member() -> None:
    raw = group_metadata("g", 7, "member-1", None)
    assert raw.startswith(b"CGMDv2:")
    assert int.from_bytes(raw[7:11], "little", signed=True) == 7
    assert raw[11:] == b"g\0member-1\0\x01"
