"""What a flushed batch records in the metrics: a revocation (a negative award) never stops the worker."""

from __future__ import annotations

from prometheus_client import REGISTRY

from stream.pipeline import Batch, Output, Record
from stream.runtime import flush


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_revocation_counts_as_points_taken_back_not_as_a_counter_going_down() -> None:
    record = Record("im.invites", 0, 0, b"alice", b"{}", 0)
    out = Output("rewards.points", b"alice", b"{}", record)
    batch = Batch(
        awards=[
            (out, "flush_rule", "points", 7),
            (out, "flush_rule", "activated", 5),
            (out, "flush_rule", "revoked", -5),
            (out, "flush_rule", "pending", 0),
        ]
    )
    points, taken_back = (
        _value("stream_points_total", rule="flush_rule"),
        _value("stream_points_taken_back_total", rule="flush_rule"),
    )
    flush._observe(batch, 0.0)  # a Prometheus counter refuses a negative increment: this raised before
    assert _value("stream_points_total", rule="flush_rule") == points + 12
    assert _value("stream_points_taken_back_total", rule="flush_rule") == taken_back + 5
