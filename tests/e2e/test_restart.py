"""End to end: a worker killed mid-stream and restarted loses no award and invents no award id.

A reference worker processes the input uninterrupted. A second worker (its own app id, state and output
topics) processes the same input while being killed with SIGKILL, restarted, stopped with SIGTERM and
restarted again. Both must emit exactly the same set of awards; under ``exactly_once`` (the default) a
``read_committed`` reader sees each award id once.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from stream import feed
from tests.e2e.harness import (
    Topics,
    WorkerProcess,
    create_topics,
    make_producer,
    output_env,
    produce,
    run_reference,
    wait_for_awards,
)

pytestmark = pytest.mark.e2e

PARTITIONS = 4
EVENTS = 20_000
USERS = 400


def _run_until(worker: WorkerProcess, processed: float, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.processed() >= processed:
            return
        time.sleep(0.1)
    raise TimeoutError(worker.log_tail())


def test_kill_and_restart_keeps_awards_exact(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    create_topics(bootstrap, topics, PARTITIONS)
    now = int(time.time() * 1000)
    records = list(
        feed.generate(EVENTS, users=USERS, seed=11, start_ms=now - 3 * 3_600_000, span_ms=7_200_000)
    )
    produce(make_producer(bootstrap), topics, records)
    expected = run_reference(bootstrap, topics, tmp_path, PARTITIONS, len(records))
    assert len(expected) > 10_000

    # Victim: SIGKILL after a quarter, SIGTERM after some more, then run to the end.
    app_id = f"{topics.prefix}-b"
    env = {**output_env(topics, "victim"), "STREAM_INSTANCE_ID": "victim"}
    victim = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    _run_until(victim, len(records) / 4)
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL

    victim = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    _run_until(victim, len(records) / 4)
    victim.stop(signal.SIGTERM)

    victim = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    try:
        got = wait_for_awards(bootstrap, topics, "victim", expected)
        missing = expected.keys() - got.by_id.keys()
        extra = got.by_id.keys() - expected.keys()
        assert not missing, f"{len(missing)} awards lost, e.g. {[expected[k] for k in list(missing)[:3]]}"
        assert not extra, f"{len(extra)} awards with new ids, e.g. {[got.by_id[k] for k in list(extra)[:3]]}"
        assert not got.conflicts, got.conflicts[:3]
        assert got.duplicates == 0, f"{got.duplicates} award ids seen twice by a read_committed reader"
        assert got.by_id == expected
    finally:
        victim.stop()
