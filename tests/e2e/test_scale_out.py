"""End to end: two workers in one consumer group split the partitions and still count exactly."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.e2e.harness import Topics, WorkerProcess, create_topics, make_producer, produce, read_all
from tests.e2e.test_scripted_week import EXPECTED_POINTS, build_script

pytestmark = pytest.mark.e2e

PARTITIONS = 4


def test_two_workers_share_the_partitions(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    create_topics(bootstrap, topics, PARTITIONS)
    app_id = f"{topics.prefix}-a"
    first = WorkerProcess(bootstrap, topics, tmp_path / "one", app_id, PARTITIONS)
    second = WorkerProcess(bootstrap, topics, tmp_path / "two", app_id, PARTITIONS)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first.start()
    try:
        second.start()
        # Both are in the group now; users on every partition, some re-routed (CRC32 partitioner).
        script, _ = build_script()
        produce(make_producer(bootstrap, partitioner="consistent_random"), topics, script.records)
        deadline = time.monotonic() + 180
        totals: dict[str, int] = {}
        while time.monotonic() < deadline:
            points = read_all(bootstrap, topics.output("points"), timeout=5)
            by_user: dict[str, int] = defaultdict(int)
            for award in {a["award_id"]: a for a in points}.values():
                by_user[award["user_id"]] += award["points"]
            totals = dict(by_user)
            if totals == EXPECTED_POINTS:
                break
            time.sleep(1)
        assert totals == EXPECTED_POINTS, first.log_tail() + "\n----\n" + second.log_tail()
        busy = [w for w in (first, second) if w.processed() > 0]
        assert len(busy) == 2, "both workers processed records"
    finally:
        second.stop()
        first.stop()
