"""Run real workers against a real broker, produce input and collect output for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("message", "like", "login", "activity", "member")
OUTPUTS = ("points", "badges", "deadletter")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Topics:
    """A private set of input and output topic names for one test."""

    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    def source(self, kind: str) -> str:
        return f"{self.prefix}.{kind}"

    def output(self, kind: str) -> str:
        return f"{self.prefix}.{kind}"

    def env(self) -> dict[str, str]:
        names = {
            "STREAM_TOPIC_MESSAGES": self.source("message"),
            "STREAM_TOPIC_LIKES": self.source("like"),
            "STREAM_TOPIC_LOGINS": self.source("login"),
            "STREAM_TOPIC_ACTIVITIES": self.source("activity"),
            "STREAM_TOPIC_MEMBERS": self.source("member"),
        }
        for kind in OUTPUTS:
            names[f"STREAM_TOPIC_{kind.upper()}"] = self.output(kind)
        return names


class WorkerProcess:
    """One ``stream worker`` subprocess with its own app id, data dir and web port."""

    def __init__(
        self, bootstrap: str, topics: Topics, workdir: Path, app_id: str, partitions: int, **extra_env: str
    ) -> None:
        self.port = free_port()
        self.log_path = workdir / f"{app_id}-{self.port}.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAM_APP_ID": app_id,
            "STREAM_DATA_DIR": str(workdir / f"data-{app_id}"),
            "STREAM_WEB_PORT": str(self.port),
            "STREAM_TOPIC_PARTITIONS": str(partitions),
            "STREAM_LOG_LEVEL": "info",
            **topics.env(),
            **extra_env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise TimeoutError(f"worker not ready in {timeout} s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as response:
                return response.status == 200 and b"Worker]: Ready" in self.log_path.read_bytes()
        except OSError:
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            return orjson.loads(response.read())

    def metrics(self) -> dict[str, float]:
        """Return the worker's own metrics (stream_*) by full sample name with labels."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith("stream_"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def processed(self) -> float:
        return sum(v for k, v in self.metrics().items() if k.startswith("stream_events_total"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def make_producer(bootstrap: str, partitioner: str = "murmur2_random") -> Producer:
    """Return a producer; murmur2 is what Java clients use, consistent_random what librdkafka defaults to."""
    return Producer({"bootstrap.servers": bootstrap, "partitioner": partitioner, "linger.ms": 5})


def produce(
    producer: Producer, topics: Topics, records: Iterable[tuple[str, str | None, Any]], *, raw: bool = False
) -> int:
    """Produce (source, key, value) records; values are JSON-encoded unless ``raw``."""
    count = 0
    for source, key, value in records:
        payload = value if raw or value is None else orjson.dumps(value)
        producer.produce(topics.source(source), key=key.encode() if key else None, value=payload)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    producer.flush(30)
    return count


def create_topics(bootstrap: str, topics: Topics, partitions: int) -> None:
    """Create a test's input topics up front, so producing never races auto-creation."""
    from confluent_kafka.admin import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = [NewTopic(topics.source(kind), partitions, 1) for kind in SOURCES]
    for future in admin.create_topics(wanted).values():
        future.result()


def delete_topics(bootstrap: str, topics: Topics, app_ids: Iterable[str] = ()) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(topics.prefix)]
    for app_id in app_ids:
        names += [n for n in admin.list_topics(timeout=10).topics if n.startswith(app_id + "-")]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(KafkaException):  # already gone: clean-up is best effort
                future.result()


def read_all(
    bootstrap: str, topic: str, timeout: float = 10.0, client: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Read a topic from the start to its current end and return the JSON values.

    ``client`` adds librdkafka settings, such as the security of ``librdkafka_config``.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, **(client or {}), "group.id": f"read-{uuid.uuid4().hex}"}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        ends = {}
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        values: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            values.append(orjson.loads(message.value()))
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
        return values
    finally:
        consumer.close()


def wait_until_quiet(worker: WorkerProcess, expected_at_least: float, timeout: float = 120.0) -> float:
    """Wait until the worker has processed at least ``expected_at_least`` records and then goes quiet."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        now = worker.processed()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif now >= expected_at_least and time.monotonic() - stable_since > 3:
            return now
        time.sleep(0.3)
    raise TimeoutError(f"processed {last}, expected at least {expected_at_least}:\n{worker.log_tail()}")
