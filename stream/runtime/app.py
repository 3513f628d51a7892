"""Build the Faust app of one worker from its settings and rules."""

from __future__ import annotations

import hashlib
import logging
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from yarl import URL

from stream.core.state import StateCache
from stream.engine.layout import decode_value, encode_value
from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.pipeline import Output, Pipeline, Topics
from stream.rules.versions import RuleBook
from stream.runtime import metrics
from stream.runtime.faults import FaultInjector
from stream.runtime.flush import AtLeastOnce, BatchFlusher, ExactlyOnce, Guarantee
from stream.runtime.ingest import BatchSink, BatchTransport
from stream.runtime.kafka_config import faust_broker_settings, librdkafka_config
from stream.runtime.membership import StaticMemberAssignor
from stream.runtime.output import OutputProducer, Rejection
from stream.runtime.recovery import CommittedTableManager
from stream.runtime.routing import advertised_url
from stream.runtime.rules_topic import RulesFollower
from stream.runtime.store import TableStore
from stream.runtime.topics import routed_topic
from stream.settings import Settings

log = logging.getLogger(__name__)

STATE_TABLE = "users"
SESSION_TIMEOUT_S = 15.0
GIL_SWITCH_INTERVAL_S = 0.0005


class RewardsApp(faust.App):
    """A Faust app whose consumer hands the batch topics to ``batch_sink`` (stream/runtime/ingest.py)."""

    batch_sink: BatchSink | None = None
    read_committed: bool = False
    kafka_client_config: dict[str, Any] = {}  # librdkafka settings for the probes of ingest and recovery

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)


@dataclass
class Worker:
    """The pieces of a running worker that the web views and tests reach."""

    app: faust.App
    table: Any
    pipeline: Pipeline
    flusher: BatchFlusher
    settings: Settings
    book: RuleBook
    follower: RulesFollower | None
    store: TableStore


def _now_ms() -> int:
    return int(time.time() * 1000)


def transactional_id(settings: Settings) -> str:
    """Return a transactional id that stays the same when this worker restarts.

    A restarted worker registering the same id fences its predecessor and aborts the transaction it left
    open, at once rather than after the transaction time-out. With static membership the instance id is
    stable by definition; otherwise the host name and the data directory (one worker per directory, which
    RocksDB's lock enforces) stand for the instance.
    """
    if settings.instance_id:
        return f"{settings.app_id}-{settings.instance_id}"
    where = f"{socket.gethostname()}:{settings.data_dir.resolve()}"
    return f"{settings.app_id}-{hashlib.blake2b(where.encode(), digest_size=6).hexdigest()}"


def create_worker(settings: Settings, book: RuleBook, follow_rules: bool = True) -> Worker:
    """Return the Faust app with its table, batch path, web views and metrics wired up.

    ``book`` holds the rules versions known at start-up; with ``follow_rules`` the worker adds the
    versions published to the rules topic later (stream/runtime/rules_topic.py).
    """
    # The producer's thread waits for the GIL while the event loop processes records; the default 5 ms
    # switch interval put up to 5 ms on each of its hand-overs (measured: p50 latency 164 -> 113 ms).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    exactly_once = settings.processing_guarantee == "exactly_once"
    faults = FaultInjector(settings.fault_kill)
    # The URL the other workers forward queries to (stream/runtime/routing.py): Faust's canonical_url, which
    # the partition assignor hands every member with the assignment. The bind address may be 0.0.0.0.
    advertised = advertised_url(settings.web_advertised_url, settings.web_host, settings.web_port)
    log.info("query API bound to %s:%s, advertised as %s", settings.web_host, settings.web_port, advertised)
    app = RewardsApp(
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
        consumer_group_instance_id=settings.instance_id,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_max_poll_records=settings.batch_max,  # one fetch never overfills a batch
        producer_acks=-1,
        producer_linger_ms=1,
        TableManager=CommittedTableManager,
        PartitionAssignor=StaticMemberAssignor,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=URL(advertised).host,
        canonical_url=advertised,
        web_in_thread=False,
        **faust_broker_settings(settings),
    )
    app.read_committed = exactly_once
    app.kafka_client_config = dict(librdkafka_config(settings))
    table = app.Table(
        STATE_TABLE, default=None, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
    )
    topics = Topics(
        sources=settings.input_topics,
        routed=routed_topic(settings),
        points=settings.topic_points,
        badges=settings.topic_badges,
        deadletter=settings.topic_deadletter,
    )

    calendar = Calendar(settings.timezone)
    store = TableStore(table)
    cache = StateCache(store, decode_value, encode_value, size=settings.state_cache_keys)
    pipeline = Pipeline(Engine(book, calendar), topics, settings.topic_partitions, _now_ms, cache)

    def substitute(rejection: Rejection) -> Output:
        metrics.DEADLETTERS.labels("output_rejected").inc()
        return pipeline.rejected(rejection.output, rejection.error)

    guarantee: Guarantee
    if exactly_once:
        output = OutputProducer(
            dict(librdkafka_config(settings)), transactional_id=transactional_id(settings)
        )
        guarantee = ExactlyOnce(app, output, substitute, settings.instance_id)
    else:
        output = OutputProducer(dict(librdkafka_config(settings)))
        guarantee = AtLeastOnce(app, output, substitute)
    output.on_sent = lambda: faults.reached("sent")
    follower = RulesFollower(settings, book) if follow_rules else None
    flusher = BatchFlusher(
        app,
        table,
        pipeline,
        guarantee,
        settings.batch_max,
        settings.batch_window_ms / 1000,
        faults,
        before_batch=follower.apply if follower is not None else None,
    )
    app.batch_sink = flusher
    # Subscribe to the batch topics; their records never reach a Faust stream (see ingest.py).
    app.topics.add(app.topic(*flusher.topics, key_type=bytes, value_type=bytes))

    @app.task  # type: ignore[untyped-decorator]
    async def flush_batches() -> None:
        if follower is not None:
            follower.start()
        await flusher.run()

    @app.on_partitions_assigned.connect  # type: ignore[misc, arg-type]
    async def on_assigned(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        pipeline.forget()

    setup_prometheus_sensors(app)
    for version in book.versions:
        metrics.RULES_VERSION.labels(version.version).set(1)
    metrics.GUARANTEE.labels(settings.processing_guarantee).set(1)
    worker = Worker(app, table, pipeline, flusher, settings, book, follower, store)
    from stream.runtime.web import register_views

    register_views(worker)
    return worker
