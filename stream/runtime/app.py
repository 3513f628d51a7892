"""Build the Faust app of one worker from its settings and rules."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.pipeline import Pipeline, Record, Topics
from stream.rules import Rules
from stream.runtime import metrics
from stream.runtime.flush import BatchFlusher
from stream.runtime.kafka_config import faust_broker_settings, librdkafka_config
from stream.runtime.output import OutputProducer
from stream.runtime.topics import routed_topic
from stream.settings import Settings

STATE_TABLE = "users"


@dataclass
class Worker:
    """The pieces of a running worker that the web views and tests reach."""

    app: faust.App
    table: Any
    pipeline: Pipeline
    flusher: BatchFlusher
    settings: Settings
    rules: Rules


def _now_ms() -> int:
    return int(time.time() * 1000)


def create_worker(settings: Settings, rules: Rules) -> Worker:
    """Return the Faust app with its table, agent, web views and metrics wired up."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.bootstrap_servers.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=1,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_in_thread=False,
        **faust_broker_settings(settings),
    )
    table = app.Table(
        STATE_TABLE, default=None, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
    )
    routed = routed_topic(settings)
    topics = Topics(
        sources=settings.input_topics,
        routed=routed,
        points=settings.topic_points,
        badges=settings.topic_badges,
        deadletter=settings.topic_deadletter,
    )

    def load(record: Record, user_key: bytes) -> bytes | None:
        value: bytes | None = table.get(user_key)
        return value

    engine = Engine(rules, Calendar(settings.timezone))
    pipeline = Pipeline(
        engine,
        topics,
        settings.topic_partitions,
        _now_ms,
        rules.time.max_future_minutes * 60_000,
        load,
    )
    output = OutputProducer(librdkafka_config(settings), f"{settings.app_id}-output")
    flusher = BatchFlusher(app, table, pipeline, output, settings.batch_max, settings.batch_window_ms / 1000)
    channel = app.topic(*settings.input_topics, routed, key_type=bytes, value_type=bytes)

    @app.agent(channel, name="rewards", concurrency=1)
    async def rewards(stream: Any) -> None:
        await flusher.run(stream)

    @app.on_partitions_revoked.connect  # type: ignore[misc, arg-type]
    async def on_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        await flusher.drain()

    @app.on_partitions_assigned.connect  # type: ignore[misc, arg-type]
    async def on_assigned(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        pipeline.forget()

    setup_prometheus_sensors(app)
    metrics.RULES_VERSION.labels(rules.version).set(1)
    worker = Worker(app, table, pipeline, flusher, settings, rules)
    from stream.runtime.web import register_views

    register_views(worker)
    return worker
