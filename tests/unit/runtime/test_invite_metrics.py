"""The invitation metrics that a flushed batch records: funnel, points paid and taken back, rejections,
the budget burnt, late activity; and the Grafana dashboard only charts metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from stream.pipeline import Batch, Record, partition_for
from stream.runtime import flush, metrics
from tests.unit.test_invite_pipeline import D0, DAY, HOUR, PARTITIONS, Cluster

ROOT = Path(__file__).resolve().parents[3]


class Observed(Cluster):
    """A cluster whose every batch is recorded in the metrics, as the flusher does after committing it."""

    def __init__(self, invites: str = "") -> None:
        super().__init__(invites)
        run = self.pipeline.run

        def run_and_observe(records: list[Record]) -> Batch:
            batch = run(records)
            flush._observe(batch, 0.0, "int.routed")
            return batch

        self.pipeline.run = run_and_observe  # type: ignore[method-assign]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot(channel: str) -> dict[str, float]:
    names = ["invited", "verified", "registered", "held", "activated_half", "activated_full", "retained"]
    names += ["flagged", "expired", "points_paid"]
    out = {stage: value("stream_invite_funnel_total", channel=channel, stage=stage) for stage in names}
    out["paid"] = value("stream_invite_points_paid_total", channel=channel)
    out["taken_back"] = value("stream_invite_points_taken_back_total", channel=channel)
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def test_the_funnel_and_points_by_channel() -> None:
    c = Observed()
    before = snapshot("m-link")
    c.invite("invited", "zed", "alice", D0, channel="m-link")
    c.register("zed", "alice", D0, channel="m-link")
    c.activate("alice", D0 + HOUR)
    c.register("alice", "bob", D0 + 2 * HOUR, channel="m-link")
    c.activate("bob", D0 + 3 * HOUR)
    c.login("bob", D0 + 8 * DAY)  # retained
    assert delta(before, snapshot("m-link")) == {
        "invited": 1,
        "registered": 2,
        "activated_half": 4,
        "activated_full": 2,
        "retained": 1,
        "paid": 10 + 10 + 10 + 10 + 2,  # two invitations' inviter and welcome rewards, one second-level bonus
    }
    before = snapshot("m-link")
    rules = ("invite_inviter", "invite_welcome", "invite_second_level")
    by_rule = [value("stream_points_taken_back_total", rule=rule) for rule in rules]
    c.invite("fraud_flagged", "alice", "bob", D0 + 9 * DAY, channel="m-link")
    assert delta(before, snapshot("m-link")) == {"flagged": 1, "taken_back": 10 + 10 + 2}
    # revocations are negative awards: counted as taken back by rule, never as a counter going down
    after = [value("stream_points_taken_back_total", rule=rule) for rule in rules]
    assert [a - b for a, b in zip(after, by_rule, strict=True)] == [10, 10, 2]


def test_rejections_by_channel_and_reason() -> None:
    c = Observed()
    before = value("stream_invite_rejected_total", channel="m-self", reason="self_invite")
    c.register("alice", "alice", D0, channel="m-self")
    c.register("alice", "alice", D0 + HOUR, channel="m-self")
    assert value("stream_invite_rejected_total", channel="m-self", reason="self_invite") == before + 2


def test_held_and_expired_stages() -> None:
    c = Observed(invites="{daily_limit: 1}")
    before = snapshot("m-held")
    c.register("alice", "a", D0, channel="m-held")
    c.register("alice", "b", D0, channel="m-held")
    c.decide("b", "reject", D0 + HOUR)
    assert delta(before, snapshot("m-held")) == {"registered": 2, "held": 1, "expired": 4}


def test_the_budget_gauges_show_the_months_promises_against_its_budget() -> None:
    c = Observed(invites="{monthly_budget: 50}")
    c.register("alice", "a", D0)
    assert value("stream_invite_budget_promised_points", month="2026-11") == 20
    assert value("stream_invite_budget_burnt_ratio", month="2026-11") == 0.4
    for name in ("b", "c", "d"):
        c.register("alice", name, D0 + HOUR)
    assert value("stream_invite_budget_promised_points", month="2026-11") == 60  # the third went over
    assert value("stream_invite_budget_burnt_ratio", month="2026-11") == 1.2


def test_a_budget_of_zero_is_burnt() -> None:
    batch = Batch(budget=[("2031-02", 0, 0)])
    flush._observe(batch, 0.0)
    assert value("stream_invite_budget_burnt_ratio", month="2031-02") == 1.0


def test_activity_after_the_windows_end_fired_is_counted_late() -> None:
    c = Observed()
    c.register("alice", "bob", D0)
    other = next(
        u
        for u in (f"x{i}" for i in range(100))
        if partition_for(u.encode(), PARTITIONS) == partition_for(b"bob", PARTITIONS)
    )
    c.login(other, D0 + 8 * DAY)  # the deadline fires
    before = value("stream_invite_late_total")
    c.login("bob", D0 + HOUR)  # inside the window, but it arrives after the window's end fired
    assert value("stream_invite_late_total") == before + 1


# --- the dashboard ----------------------------------------------------------------------------------------


def _exprs(panels: list[dict[str, Any]]) -> list[str]:
    out = []
    for panel in panels:
        out.extend(target["expr"] for target in panel.get("targets", []))
        out.extend(_exprs(panel.get("panels", [])))
    return out


def test_every_stream_metric_the_dashboard_charts_exists() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboard.json").read_text())
    exposed: set[str] = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                exposed.update(_sample_names(family))
    used = {name for expr in _exprs(dashboard["panels"]) for name in re.findall(r"\bstream_[a-z_]+", expr)}
    assert used and used <= exposed, used - exposed
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for name in (
        "stream_invite_funnel_total",
        "stream_invite_points_paid_total",
        "stream_invite_rejected_total",
        "stream_invite_budget_burnt_ratio",
    ):
        assert name in used


def _sample_names(family: Any) -> list[str]:
    if family.type == "counter":
        return [family.name + "_total"]
    if family.type == "histogram":
        return [family.name + suffix for suffix in ("_bucket", "_sum", "_count")]
    return [family.name]
