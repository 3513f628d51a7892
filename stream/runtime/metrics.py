"""Define the worker's own Prometheus metrics.

Faust's sensors (consumer lag, commit latency, table sizes...) are exposed beside these on /metrics.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("stream_events", "Input records processed, by topic and outcome", ["topic", "outcome"])
IGNORED = Counter("stream_events_ignored", "Events that counted for nothing, by reason", ["reason"])
AWARDS = Counter("stream_awards", "Awards emitted, by rule (or badge) and kind", ["rule", "kind"])
POINTS = Counter("stream_points", "Points granted, by rule", ["rule"])
POINTS_TAKEN_BACK = Counter(
    "stream_points_taken_back", "Points taken back by revocations (negative awards), by rule", ["rule"]
)
DEADLETTERS = Counter("stream_deadletters", "Records sent to the dead-letter topic, by reason", ["reason"])
LATENCY = Histogram(
    "stream_event_to_award_seconds",
    "From the input record's timestamp to the award acknowledged by Kafka",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH_SECONDS = Histogram(
    "stream_batch_seconds",
    "Time to process, send and persist one batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "stream_batch_size", "Records per batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
)
RULES_VERSION = Gauge("stream_rules_info", "Rules versions known to this worker (value 1)", ["version"])
RULES_REJECTED = Counter("stream_rules_rejected", "Records of the rules topic that were not a valid version")
STATE_BYTES = Counter("stream_state_bytes_written", "Bytes of state keys and values written to the changelog")
GUARANTEE = Gauge(
    "stream_processing_guarantee_info", "The processing guarantee in force (value 1)", ["guarantee"]
)
INTERNAL = Counter(
    "stream_internal_messages", "Internal-topic messages applied, by type and status", ["type", "status"]
)
INTERNAL_BYTES = Counter(
    "stream_internal_bytes", "Bytes sent to the internal topic, by kind of message", ["kind"]
)
BOARD_LATE = Counter(
    "stream_board_late",
    "Contributions to a board after their week closed (they still count for points, not for the board)",
)
WEEKLY_POINTS = Histogram(
    "stream_weekly_points_per_user",
    "Points a user earned in a closed week (observed once per user and week, when the week closes)",
    buckets=(0, 50, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000),
)
BAND_SHARE = Gauge(
    "stream_weekly_points_band_share",
    "Share of users inside seed 000's 200-300 band in the latest closed week, on this worker's partitions",
)
INVITE_FUNNEL = Counter(
    "stream_invite_funnel",
    "Invitation funnel counts by channel and stage (invited, verified, registered, held, activated_half, "
    "activated_full, retained, flagged, expired)",
    ["channel", "stage"],
)
INVITE_POINTS_PAID = Counter(
    "stream_invite_points_paid",
    "Invitation reward points that counted (activated or granted), by channel",
    ["channel"],
)
INVITE_POINTS_TAKEN_BACK = Counter(
    "stream_invite_points_taken_back",
    "Invitation reward points taken back (revoked after a fraud flag), by channel",
    ["channel"],
)
INVITE_REJECTED = Counter(
    "stream_invite_rejected",
    "Registrations that earned nothing, by channel and reason (self_invite, duplicate_registration, ...)",
    ["channel", "reason"],
)
INVITE_BUDGET_PROMISED = Gauge(
    "stream_invite_budget_promised_points",
    "Invitation points promised in a month against its budget (reported by the worker owning the month)",
    ["month"],
)
INVITE_BUDGET_BURNT = Gauge(
    "stream_invite_budget_burnt_ratio",
    "Share of a month's invitation budget promised (1 = reached: new registrations wait for approval)",
    ["month"],
)
INVITE_LATE = Counter(
    "stream_invite_late",
    "Invitee activity that would have activated a half but came after its window's end had fired",
)

METRICS_ERRORS = Counter(
    "stream_metrics_errors",
    "Flushed batches whose recording in the metrics failed (logged; the batch is done)",
)
