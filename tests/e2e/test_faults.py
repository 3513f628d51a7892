"""End to end: faults that must not cost an award or publish one twice.

Every test runs against the same input, produced once, and compares with one uninterrupted reference
run (its own app id and output topics): the same award ids with the same content, and, under
``exactly_once`` (the default), each id seen once by a ``read_committed`` reader.

- a worker that SIGKILLs itself inside each phase of a flush (sent, durable, applied), then restarts;
- workers joining and leaving the group mid-batch, several times, while input still arrives;
- a restart with static membership resumes within seconds, not after the session timeout;
- a ~1 MB input record and outputs the broker refuses: dead letters, bounded, and the worker goes on.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from stream import feed
from stream.runtime.faults import PHASES
from tests.e2e.harness import (
    Topics,
    WorkerProcess,
    create_topics,
    delete_topics,
    make_producer,
    output_env,
    produce,
    read_all,
    run_reference,
    wait_for_awards,
    wait_until_quiet,
)

pytestmark = pytest.mark.e2e

PARTITIONS = 4
EVENTS = 6_000
USERS = 200


@dataclass
class Traffic:
    """Input topics holding the whole traffic, the traffic itself, and the reference run's awards."""

    topics: Topics
    records: list[feed.Record]
    expected: dict[str, tuple[Any, ...]]


@pytest.fixture(scope="module")
def traffic(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    """Produce the input once and run the reference over it."""
    topics = Topics()
    create_topics(bootstrap, topics, PARTITIONS)
    now = int(time.time() * 1000)
    records = list(
        feed.generate(EVENTS, users=USERS, seed=23, start_ms=now - 3 * 3_600_000, span_ms=7_200_000)
    )
    produce(make_producer(bootstrap), topics, records)
    expected = run_reference(
        bootstrap, topics, tmp_path_factory.mktemp("reference"), PARTITIONS, len(records)
    )
    assert len(expected) > 2_000
    yield Traffic(topics, records, expected)
    delete_topics(bootstrap, topics)


def _assert_same_awards(bootstrap: str, traffic: Traffic, tag: str, topics: Topics | None = None) -> None:
    got = wait_for_awards(bootstrap, topics or traffic.topics, tag, traffic.expected)
    missing = traffic.expected.keys() - got.by_id.keys()
    extra = got.by_id.keys() - traffic.expected.keys()
    summary = f"{len(missing)} missing, {len(extra)} extra, {got.duplicates} duplicates, {len(got.conflicts)} conflicts"
    print(summary, sorted(traffic.expected[k] for k in missing), sorted(got.by_id[k] for k in extra))
    assert not missing, f"{len(missing)} awards lost, e.g. {[traffic.expected[k] for k in list(missing)[:3]]}"
    assert not extra, f"{len(extra)} awards with new ids, e.g. {[got.by_id[k] for k in list(extra)[:3]]}"
    assert not got.conflicts, got.conflicts[:3]
    assert got.duplicates == 0, f"{got.duplicates} award ids seen twice by a read_committed reader"
    assert got.by_id == traffic.expected


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_inside_each_flush_phase(
    bootstrap: str, traffic: Traffic, tmp_path: Path, phase: str
) -> None:
    topics = traffic.topics
    app_id = f"{topics.prefix}-kill-{phase}"
    env = {**output_env(topics, f"kill-{phase}"), "STREAM_INSTANCE_ID": "w1", "STREAM_BATCH_MAX": "300"}
    victim = WorkerProcess(
        bootstrap, topics, tmp_path, app_id, PARTITIONS, **env, STREAM_FAULT_KILL=f"{phase}:4"
    )
    assert victim.spawn().wait_exit(120) == -signal.SIGKILL
    assert f"killing the worker in phase '{phase}' of batch 4" in victim.log_path.read_text()

    survivor = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    try:
        _assert_same_awards(bootstrap, traffic, f"kill-{phase}")
    finally:
        survivor.stop()


def test_rebalance_mid_batch_loses_nothing(
    bootstrap: str, traffic: Traffic, topics: Topics, tmp_path: Path
) -> None:
    """Workers join and leave while batches are open and input arrives; nothing is lost or doubled.

    The same traffic, in the same order, goes to fresh input topics in four parts, one before each change
    of the group; a
    long batch window keeps every batch open across the rebalance. Award ids do not depend on topic
    names, so the reference's awards are the expectation.
    """
    create_topics(bootstrap, topics, PARTITIONS)
    producer = make_producer(bootstrap)
    app_id = f"{topics.prefix}-a"
    env = {**output_env(topics, "rebalance"), "STREAM_BATCH_MAX": "100000", "STREAM_BATCH_WINDOW_MS": "1500"}
    quarter = len(traffic.records) // 4 + 1  # contiguous parts: each topic keeps the reference's order
    parts = [traffic.records[i : i + quarter] for i in range(0, len(traffic.records), quarter)]
    produce(producer, topics, parts[0])
    first = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    try:
        for i, part in enumerate(parts[1:]):
            produce(producer, topics, part)
            time.sleep(0.5)  # mid-batch: the window is 1.5 s
            workdir = tmp_path / f"joiner-{i}"
            workdir.mkdir()
            joiner = WorkerProcess(bootstrap, topics, workdir, app_id, PARTITIONS, **env).start()
            time.sleep(2.0)
            joiner.stop(signal.SIGTERM)
        _assert_same_awards(bootstrap, traffic, "rebalance", topics)
    finally:
        first.stop()


def test_static_member_resumes_quickly_after_sigkill(
    bootstrap: str, traffic: Traffic, tmp_path: Path
) -> None:
    topics = traffic.topics
    app_id = f"{topics.prefix}-static"
    env = {**output_env(topics, "static"), "STREAM_INSTANCE_ID": "pod-0"}
    worker = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    wait_until_quiet(worker, EVENTS)
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL

    # New input for the restarted worker: how long until it is processed?
    producer = make_producer(bootstrap)
    now = int(time.time() * 1000)
    extra = list(
        feed.generate(200, users=USERS, seed=99, start_ms=now - 60_000, span_ms=30_000, roster=False)
    )
    restarted = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env)
    began = time.monotonic()
    restarted.start()
    try:
        produce(producer, topics, extra)
        while restarted.processed() < len(extra):
            assert time.monotonic() - began < 30, f"not resumed within 30 s:\n{restarted.log_tail()}"
            time.sleep(0.2)
        resumed = time.monotonic() - began
    finally:
        restarted.stop()
    # Without static membership the group would wait for the dead member's session to time out first.
    assert resumed < 12, f"took {resumed:.1f} s"


def test_huge_and_unpublishable_records_become_bounded_dead_letters(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    create_topics(bootstrap, topics, PARTITIONS)
    # A points topic that refuses anything over 300 bytes: every point award is rejected by the broker.
    tiny = f"{topics.prefix}.tiny.points"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(tiny, PARTITIONS, 1, config={"max.message.bytes": "100"})])[tiny].result()
    now = int(time.time() * 1000)
    huge = {"event_id": "huge", "user_id": "u1", "team_id": "t1", "type": "thanks_card"}
    huge |= {"target_user_id": "u2", "note": "x" * 1_000_000, "ts": now}
    login = {"event_id": "l1", "user_id": "u3", "team_id": "t1", "ts": now}
    message = {"event_id": "m1", "user_id": "u1", "team_id": "t1", "kind": "text", "ts": now}
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000})
    produce(producer, topics, [("activity", "u1", huge), ("login", "u3", login), ("message", "u1", message)])

    env = {**output_env(topics, "huge"), "STREAM_TOPIC_POINTS": tiny}
    worker = WorkerProcess(bootstrap, topics, tmp_path, f"{topics.prefix}-a", PARTITIONS, **env).start()
    try:
        wait_until_quiet(worker, 3)
        letters = read_all(bootstrap, f"{topics.prefix}.huge.deadletter", committed_only=True)
        assert worker.proc is not None and worker.proc.poll() is None, "the worker stopped"
    finally:
        worker.stop()
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_reason.setdefault(letter["reason"], []).append(letter)
    (too_large,) = by_reason["too_large"]
    assert too_large["topic"] == topics.source("activity")
    assert too_large["truncated"] is True
    assert too_large["value_size"] == len(orjson.dumps(huge))
    assert len(orjson.dumps(too_large)) < 20_000
    # The login's and the message's awards were refused by the topic: each became a dead letter naming
    # the input record, and nothing else stopped.
    rejected = {
        (letter["topic"], orjson.loads(letter["value"])["event_id"])
        for letter in by_reason["output_rejected"]
    }
    assert rejected == {(topics.source("login"), "l1"), (topics.source("message"), "m1")}
    assert all("rejected" in letter["detail"] for letter in by_reason["output_rejected"])
