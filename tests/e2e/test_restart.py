"""End to end: a worker killed mid-stream and restarted loses no award and invents no award id.

A reference worker processes the input uninterrupted. A second worker (its own app id, state and output
topics) processes the same input while being killed with SIGKILL, restarted, stopped with SIGTERM and
restarted again. Both must emit exactly the same set of awards; the interrupted one may re-emit an
award after a crash, but only with the same id and the same content.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from stream import feed
from tests.e2e.harness import Topics, WorkerProcess, create_topics, make_producer, produce, read_all

pytestmark = pytest.mark.e2e

PARTITIONS = 4
EVENTS = 20_000
USERS = 400


def _outputs(topics: Topics, tag: str) -> dict[str, str]:
    return {
        "STREAM_TOPIC_POINTS": f"{topics.prefix}.{tag}.points",
        "STREAM_TOPIC_BADGES": f"{topics.prefix}.{tag}.badges",
        "STREAM_TOPIC_DEADLETTER": f"{topics.prefix}.{tag}.deadletter",
    }


def _identity(award: dict[str, Any]) -> tuple[Any, ...]:
    """What an award is, beyond its id (team_id is descriptive and left out)."""
    return tuple(award.get(k) for k in ("user_id", "rule", "badge", "points", "period", "status"))


def _collect(bootstrap: str, topics: Topics, tag: str) -> tuple[dict[str, tuple[Any, ...]], list[str]]:
    records = read_all(bootstrap, f"{topics.prefix}.{tag}.points", timeout=5)
    records += read_all(bootstrap, f"{topics.prefix}.{tag}.badges", timeout=5)
    by_id: dict[str, tuple[Any, ...]] = {}
    conflicts = []
    for record in records:
        identity = _identity(record)
        seen = by_id.setdefault(record["award_id"], identity)
        if seen != identity:
            conflicts.append(f"{record['award_id']}: {seen} vs {identity}")
    return by_id, conflicts


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

    # Reference: uninterrupted.
    ref = WorkerProcess(
        bootstrap, topics, tmp_path, f"{topics.prefix}-a", PARTITIONS, **_outputs(topics, "ref")
    )
    ref.start()
    try:
        deadline = time.monotonic() + 240
        expected: dict[str, tuple[Any, ...]] = {}
        while time.monotonic() < deadline:
            time.sleep(3)
            before = len(expected)
            expected, _ = _collect(bootstrap, topics, "ref")
            if expected and len(expected) == before and ref.processed() >= len(records):
                break
    finally:
        ref.stop()
    assert len(expected) > 10_000

    # Victim: SIGKILL after a quarter, SIGTERM after some more, then run to the end.
    app_id = f"{topics.prefix}-b"
    env = _outputs(topics, "victim")
    victim = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    _run_until(victim, len(records) / 4)
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL

    victim = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    _run_until(victim, len(records) / 4)
    victim.stop(signal.SIGTERM)

    victim = WorkerProcess(bootstrap, topics, tmp_path, app_id, PARTITIONS, **env).start()
    try:
        deadline = time.monotonic() + 240
        got: dict[str, tuple[Any, ...]] = {}
        conflicts: list[str] = []
        while time.monotonic() < deadline:
            got, conflicts = _collect(bootstrap, topics, "victim")
            if got.keys() == expected.keys():
                break
            time.sleep(3)
        missing = expected.keys() - got.keys()
        extra = got.keys() - expected.keys()
        assert not missing, f"{len(missing)} awards lost, e.g. {[expected[k] for k in list(missing)[:3]]}"
        assert not extra, f"{len(extra)} awards with new ids, e.g. {[got[k] for k in list(extra)[:3]]}"
        assert not conflicts, conflicts[:3]
        assert got == expected
    finally:
        victim.stop()
