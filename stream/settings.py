"""Read the worker's settings from the environment.

Every setting is an environment variable; ``stream --help`` and the README list them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of one worker, each from the environment variable named in its alias."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS", description="brokers")
    app_id: str = Field(
        "im-rewards",
        alias="STREAM_APP_ID",
        description="Faust app id = consumer group and prefix of internal topics",
    )
    data_dir: Path = Field(
        Path("./data"), alias="STREAM_DATA_DIR", description="RocksDB tables of this worker"
    )
    web_port: int = Field(6066, alias="STREAM_WEB_PORT", description="HTTP: query API and /metrics")
    web_host: str = Field("127.0.0.1", alias="STREAM_WEB_HOST", description="address the HTTP server binds")
    web_advertised_url: str | None = Field(
        None,
        alias="STREAM_WEB_ADVERTISED_URL",
        description="URL the other workers reach this one's HTTP server at, to forward queries; unset: "
        "http://STREAM_WEB_HOST:STREAM_WEB_PORT, with the host's name in place of 0.0.0.0 or ::",
    )
    api_url: str | None = Field(
        None,
        alias="STREAM_API_URL",
        description="query API that stream explain, report and invites ask (any worker's URL); unset: "
        "http://STREAM_WEB_HOST:STREAM_WEB_PORT, with 127.0.0.1 in place of 0.0.0.0 or ::",
    )
    rules_file: Path | None = Field(None, alias="STREAM_RULES_FILE", description="the rules YAML")
    timezone: str = Field(
        "Asia/Shanghai", alias="STREAM_TIMEZONE", description="calendar of days, weeks and months"
    )
    topic_partitions: int = Field(
        8, alias="STREAM_TOPIC_PARTITIONS", ge=1, description="partitions of the topics the worker creates"
    )
    topic_messages: str = Field("im.messages", alias="STREAM_TOPIC_MESSAGES", description="input: messages")
    topic_likes: str = Field("im.likes", alias="STREAM_TOPIC_LIKES", description="input: likes")
    topic_logins: str = Field("im.logins", alias="STREAM_TOPIC_LOGINS", description="input: logins")
    topic_activities: str = Field(
        "im.activities",
        alias="STREAM_TOPIC_ACTIVITIES",
        description="input: votes, groups, thanks, marks, feed",
    )
    topic_members: str = Field(
        "im.members", alias="STREAM_TOPIC_MEMBERS", description="input: the team roster"
    )
    topic_invites: str = Field(
        "im.invites", alias="STREAM_TOPIC_INVITES", description="input: the invitation funnel"
    )
    topic_invite_decisions: str = Field(
        "rewards.invite-decisions",
        alias="STREAM_TOPIC_INVITE_DECISIONS",
        description="input: operators' approvals and rejections of waiting invitations",
    )
    topic_points: str = Field(
        "rewards.points", alias="STREAM_TOPIC_POINTS", description="output: point awards"
    )
    topic_badges: str = Field("rewards.badges", alias="STREAM_TOPIC_BADGES", description="output: badges")
    topic_rules: str = Field(
        "rewards.rules", alias="STREAM_TOPIC_RULES", description="published rules versions (compacted)"
    )
    topic_deadletter: str = Field(
        "rewards.deadletter", alias="STREAM_TOPIC_DEADLETTER", description="output: input that failed"
    )
    replication_factor: int = Field(
        1, alias="STREAM_REPLICATION_FACTOR", ge=1, description="replication of the topics the worker creates"
    )
    batch_max: int = Field(
        5000, alias="STREAM_BATCH_MAX", ge=1, description="most events processed and persisted as one batch"
    )
    batch_window_ms: int = Field(
        5, alias="STREAM_BATCH_WINDOW_MS", ge=1, description="longest wait to fill a batch, milliseconds"
    )
    state_cache_keys: int = Field(
        1_000_000, alias="STREAM_STATE_CACHE_KEYS", ge=1000, description="state keys kept decoded in memory"
    )
    log_level: str = Field("info", alias="STREAM_LOG_LEVEL", description="worker log level")
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once",
        alias="STREAM_PROCESSING_GUARANTEE",
        description="exactly_once (one Kafka transaction per batch) or at_least_once",
    )
    instance_id: str | None = Field(
        None,
        alias="STREAM_INSTANCE_ID",
        description="static group membership id, stable across restarts (the pod name on Kubernetes)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", alias="KAFKA_SASL_MECHANISM", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME", description="SASL user")
    sasl_password: str | None = Field(None, alias="KAFKA_SASL_PASSWORD", description="SASL password")
    ssl_cafile: Path | None = Field(
        None,
        alias="KAFKA_SSL_CAFILE",
        description="CA certificate (PEM) that signed the brokers' certificates",
    )
    fault_kill: str | None = Field(
        None,
        alias="STREAM_FAULT_KILL",
        description="testing only: PHASE:N makes the worker SIGKILL itself in flush phase PHASE "
        "(sent, durable, applied) of its N-th batch",
    )

    @property
    def input_topics(self) -> dict[str, str]:
        """Map each input topic name to the kind of event it carries."""
        return {
            self.topic_messages: "message",
            self.topic_likes: "like",
            self.topic_logins: "login",
            self.topic_activities: "activity",
            self.topic_members: "member",
            self.topic_invites: "invite",
            self.topic_invite_decisions: "decision",
        }


def settings_help() -> str:
    """Describe every environment variable with its default, one per line."""
    lines = []
    for field in Settings.model_fields.values():
        default = field.default
        if default is None:
            default = "(bundled rules)" if field.alias == "STREAM_RULES_FILE" else "(none)"
        lines.append(f"  {field.alias:<28} {field.description} [default: {default}]")
    return "\n".join(lines)
