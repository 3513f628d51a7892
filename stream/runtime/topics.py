"""Create the topics the worker needs and check the ones that exist.

The per-user table is co-partitioned with every input topic: Faust writes a user's state to the
partition the user's events arrive on. So every input topic and the internal routed topic must have
exactly ``STREAM_TOPIC_PARTITIONS`` partitions; the worker refuses to start otherwise.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream.runtime.kafka_config import librdkafka_config
from stream.settings import Settings

log = logging.getLogger(__name__)

# Errors that retrying does not cure: the brokers refused the credentials or the TLS handshake. One alone
# may be a connection dropped mid-handshake; librdkafka soon reconnects, and a real refusal repeats.
REFUSED = (KafkaError._AUTHENTICATION, KafkaError._SSL)
REFUSALS_TO_GIVE_UP = 3


class TopicError(RuntimeError):
    """Raised when the topics cannot be checked or created, or an existing one cannot be used as it is."""


def routed_topic(settings: Settings) -> str:
    """Return the internal topic that carries credits and re-keyed events to their user's partition."""
    return f"{settings.app_id}-routed"


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create missing topics; fail when an input topic's partition count differs from the setting."""
    errors: list[KafkaError] = []
    config: dict[str, Any] = {**librdkafka_config(settings), "error_cb": errors.append}
    admin = AdminClient(config)
    metadata = _cluster_metadata(admin, errors, settings.bootstrap_servers, timeout)
    n = settings.topic_partitions
    rf = settings.replication_factor
    copartitioned = [*settings.input_topics, routed_topic(settings)]
    outputs = [settings.topic_points, settings.topic_badges, settings.topic_deadletter]
    wanted: list[NewTopic] = []
    for name in copartitioned:
        existing = metadata.topics.get(name)
        if existing is not None and existing.error is None:
            have = len(existing.partitions)
            if have != n:
                raise TopicError(
                    f"topic {name!r} has {have} partitions but STREAM_TOPIC_PARTITIONS is {n}: input topics "
                    f"are co-partitioned with the state table; set STREAM_TOPIC_PARTITIONS={have}"
                )
            continue
        config = {"cleanup.policy": "compact"} if name == settings.topic_members else {}
        wanted.append(NewTopic(name, num_partitions=n, replication_factor=rf, config=config))
    for name in outputs:
        existing = metadata.topics.get(name)
        if existing is None or existing.error is not None:
            wanted.append(NewTopic(name, num_partitions=n, replication_factor=rf))
    wanted.extend(_rules_topic(metadata, settings))
    _create(admin, wanted, timeout)


def ensure_rules_topic(settings: Settings, timeout: float = 30.0) -> None:
    """Create the rules topic if it is missing (what ``stream rules publish|show`` need)."""
    errors: list[KafkaError] = []
    config: dict[str, Any] = {**librdkafka_config(settings), "error_cb": errors.append}
    admin = AdminClient(config)
    metadata = _cluster_metadata(admin, errors, settings.bootstrap_servers, timeout)
    _create(admin, _rules_topic(metadata, settings), timeout)


def _rules_topic(metadata: Any, settings: Settings) -> list[NewTopic]:
    existing = metadata.topics.get(settings.topic_rules)
    if existing is not None and existing.error is None:
        return []
    # every worker reads every version: one partition keeps them in publication order
    config = {"cleanup.policy": "compact"}
    return [
        NewTopic(
            settings.topic_rules,
            num_partitions=1,
            replication_factor=settings.replication_factor,
            config=config,
        )
    ]


def _create(admin: AdminClient, wanted: list[NewTopic], timeout: float) -> None:
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            log.info("created topic %s", name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            raise TopicError(f"cannot create topic {name!r}: {exc}") from exc


def _cluster_metadata(admin: AdminClient, errors: list[KafkaError], brokers: str, timeout: float) -> Any:
    """Return the cluster's metadata; fail as soon as the brokers keep refusing the credentials or TLS."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # serve error_cb
            refused = [error for error in errors if error.code() in REFUSED]
            if len(refused) >= REFUSALS_TO_GIVE_UP:
                raise TopicError(f"Kafka at {brokers} refused this client: {refused[-1].str()}") from exc
            if time.monotonic() >= deadline:
                raise TopicError(f"no answer from Kafka at {brokers} within {timeout:.0f} s: {exc}") from exc
