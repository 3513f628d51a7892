"""Send an operator's decision on a waiting invitation: ``stream invites approve|reject INVITEE``.

One JSON record (schemas/rewards.invite-decisions.schema.json) keyed by the invitee goes to
``STREAM_TOPIC_INVITE_DECISIONS``, which the workers consume. The key is hashed with murmur2 as a Java
client (and Faust) would, so the record lands on the invitee's partition, where its invitation waits. The
producer uses the same librdkafka connection settings as the workers (TLS, SASL), is idempotent, and
waits for the broker's acknowledgement: a decision is reported sent only once it is in the topic.

The topic is never created here: a broker that auto-creates topics would give it its default partition
count, not the workers' (their input topics are co-partitioned). No topic means no worker ran yet, so
nothing can be waiting.
"""

from __future__ import annotations

import getpass
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.runtime.kafka_config import librdkafka_config
from stream.settings import Settings

DECISIONS = ("approve", "reject")
MAX_ID = 256  # the schema's longest id
EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


class DecisionError(Exception):
    """The decision was not sent; ``exit_code`` is 1 when refused, 3 when Kafka could not be reached."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Sent:
    """Where the broker stored a decision."""

    topic: str
    partition: int
    offset: int


def default_operator() -> str | None:
    """Return the login name of whoever runs the command (the audit trail's default), or None."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError, ImportError):  # no passwd entry and no LOGNAME/USER (some containers)
        return None
    return name[:MAX_ID] or None


def decision_record(
    invitee: str, decision: str, operator: str | None, now_ms: int, event_id: str | None = None
) -> dict[str, Any]:
    """Return the decision record: a fresh uuid4 ``event_id`` unless given, ``ts`` the decision's time."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "invitee_id": invitee,
        "decision": decision,
        "ts": now_ms,
        "operator": operator,
    }


def now_ms() -> int:
    """Return the wall clock in epoch milliseconds: an operator decides now."""
    return int(time.time() * 1000)


def send_decision(
    settings: Settings,
    record: dict[str, Any],
    *,
    timeout_s: float = 30.0,
) -> Sent:
    """Produce ``record`` to the decisions topic keyed by its invitee; wait for the acknowledgement.

    Raises ``DecisionError``: Kafka not answering (exit 3), the topic missing, or the record refused (1).
    """
    import orjson

    topic = settings.topic_invite_decisions
    errors: list[KafkaError] = []
    client = Producer(
        {
            **librdkafka_config(settings),
            "partitioner": "murmur2_random",  # the invitee's partition, as the workers compute it
            "enable.idempotence": True,
            "message.timeout.ms": int(timeout_s * 1000),
            "error_cb": errors.append,
        }
    )
    try:
        metadata = client.list_topics(timeout=min(timeout_s, 15.0))
    except KafkaException as exc:
        why = errors[-1].str() if errors else str(exc)
        raise DecisionError(
            f"no answer from Kafka at {settings.bootstrap_servers}: {why}", EXIT_UNAVAILABLE
        ) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise DecisionError(
            f"topic {topic!r} does not exist at {settings.bootstrap_servers}: the workers create it when "
            "they start (nothing can be waiting before), or STREAM_TOPIC_INVITE_DECISIONS names another topic"
        )
    reports: list[tuple[KafkaError | None, Message]] = []
    client.produce(
        topic,
        orjson.dumps(record),
        str(record["invitee_id"]).encode(),
        on_delivery=lambda err, msg: reports.append((err, msg)),
    )
    client.flush(timeout_s + 5.0)
    if not reports:
        raise DecisionError(
            f"the decision was not acknowledged by Kafka at {settings.bootstrap_servers} within "
            f"{timeout_s:g} s; it may or may not have been written (check with stream invites pending)",
            EXIT_UNAVAILABLE,
        )
    err, msg = reports[0]
    if err is not None:
        code = EXIT_UNAVAILABLE if err.code() == KafkaError._MSG_TIMED_OUT else EXIT_REFUSED
        raise DecisionError(f"Kafka did not take the decision: {err.str()}", code)
    return Sent(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0))
