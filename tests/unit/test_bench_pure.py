"""The in-process measures of bench/bench.py run on the current APIs (small inputs, no Kafka)."""

from __future__ import annotations

import time

from bench.bench import pure_engine, pure_pipeline
from stream.feed import generate
from stream.pipeline import Topics

DAY_MS = 86_400_000
SOURCES = ("message", "like", "login", "activity", "member")


def records() -> list[tuple[str, str, dict]]:
    now = int(time.time() * 1000)
    return list(generate(1950, users=50, seed=7, start_ms=now - 3 * DAY_MS - 600_000, span_ms=3 * DAY_MS))


def test_pure_pipeline_reports_cost_awards_and_bytes_written() -> None:
    topics = Topics({f"in.{s}": s for s in SOURCES}, "routed", "points", "badges", "dead")
    us, awards, written = pure_pipeline(records(), topics, 4)
    assert us > 0
    assert awards.count > 0 and awards.points > 0
    assert 20 < written < 2000  # bytes of state changelog per event


def test_pure_engine_reports_a_rate() -> None:
    per_s, n, seconds = pure_engine(records(), 4, gc_every_s=0.0)  # collects and freezes as it goes
    assert n == 2000 and seconds > 0 and per_s > 0
