"""Read the worker's settings from the environment.

Every setting is an environment variable; ``stream --help`` and the README list them all.
"""

from __future__ import annotations

from pathlib import Path

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
    topic_points: str = Field(
        "rewards.points", alias="STREAM_TOPIC_POINTS", description="output: point awards"
    )
    topic_badges: str = Field("rewards.badges", alias="STREAM_TOPIC_BADGES", description="output: badges")
    topic_deadletter: str = Field(
        "rewards.deadletter", alias="STREAM_TOPIC_DEADLETTER", description="output: input that failed"
    )
    replication_factor: int = Field(
        1, alias="STREAM_REPLICATION_FACTOR", ge=1, description="replication of the topics the worker creates"
    )
    batch_max: int = Field(
        1000, alias="STREAM_BATCH_MAX", ge=1, description="most events processed and persisted as one batch"
    )
    batch_window_ms: int = Field(
        20, alias="STREAM_BATCH_WINDOW_MS", ge=1, description="longest wait to fill a batch, milliseconds"
    )
    log_level: str = Field("info", alias="STREAM_LOG_LEVEL", description="worker log level")

    @property
    def input_topics(self) -> dict[str, str]:
        """Map each input topic name to the kind of event it carries."""
        return {
            self.topic_messages: "message",
            self.topic_likes: "like",
            self.topic_logins: "login",
            self.topic_activities: "activity",
            self.topic_members: "member",
        }


def settings_help() -> str:
    """Describe every environment variable with its default, one per line."""
    lines = []
    for field in Settings.model_fields.values():
        default = "(bundled rules)" if field.default is None else field.default
        lines.append(f"  {field.alias:<28} {field.description} [default: {default}]")
    return "\n".join(lines)
