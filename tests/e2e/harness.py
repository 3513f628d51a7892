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
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("message", "like", "login", "activity", "member", "invite", "decision")
OUTPUTS = ("points", "badges", "deadletter")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def code_env() -> dict[str, str]:
    """Return PYTHONPATH with this checkout first, so ``python -m stream`` runs the code under test.

    The venv's ``stream`` package may be an editable install of another checkout; a path on PYTHONPATH
    comes before it on sys.path.
    """
    rest = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), *([rest] if rest else [])])}


def run_stream(
    args: list[str], env: Mapping[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stream ARGS`` of this checkout with ``env`` added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "stream", *args],
        env={**os.environ, **code_env(), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
            "STREAM_TOPIC_INVITES": self.source("invite"),
            "STREAM_TOPIC_INVITE_DECISIONS": self.source("decision"),
            # A private rules topic: a version one test publishes must not reach another test's workers.
            "STREAM_TOPIC_RULES": f"{self.prefix}.rules",
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
            **code_env(),
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
        self.log_offset = 0  # where this incarnation's log starts (a restart appends to the same file)

    def spawn(self) -> WorkerProcess:
        """Start the process without waiting for it to be ready."""
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        return self

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself and return its exit code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"worker still running after {timeout} s:\n{self.log_tail()}") from None

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        return self.spawn().wait_ready(timeout)

    def wait_ready(self, timeout: float = 120.0) -> WorkerProcess:
        """Wait until the spawned process answers /health and has logged that it is ready."""
        assert self.proc is not None
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
                if response.status != 200:
                    return False
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)  # a restarted worker: its own "Ready", not its predecessor's
                return b"Worker]: Ready" in log.read()
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
    # Idempotent: a retried request never reorders a partition's records (the tests compare runs whose
    # capped rules depend on that order).
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": partitioner,
            "linger.ms": 5,
            "enable.idempotence": True,
        }
    )


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
    """Delete a test's topics and the internal topics of its workers' app ids."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(topics.prefix)]
    names += [n for n in admin.list_topics(timeout=10).topics if any(n.startswith(a + "-") for a in app_ids)]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(KafkaException):  # already gone: clean-up is best effort
                future.result()


def read_all(
    bootstrap: str,
    topic: str,
    timeout: float = 10.0,
    client: Mapping[str, str] | None = None,
    *,
    committed_only: bool = False,
) -> list[dict[str, Any]]:
    """Read a topic from the start to its current end and return the JSON values.

    ``client`` adds librdkafka settings, such as the security of ``librdkafka_config``.
    ``committed_only`` reads as a downstream ``read_committed`` consumer does: records of aborted
    transactions are skipped, and the end is the last stable offset.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **(client or {}),
            "group.id": f"read-{uuid.uuid4().hex}",
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
            "enable.partition.eof": True,
        }
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
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    ends.pop(message.partition(), None)  # the end of what this reader may see
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


def output_env(topics: Topics, tag: str) -> dict[str, str]:
    """Return the variables that give one worker run output topics of its own, named by ``tag``."""
    return {
        "STREAM_TOPIC_POINTS": f"{topics.prefix}.{tag}.points",
        "STREAM_TOPIC_BADGES": f"{topics.prefix}.{tag}.badges",
        "STREAM_TOPIC_DEADLETTER": f"{topics.prefix}.{tag}.deadletter",
    }


def award_identity(award: dict[str, Any]) -> tuple[Any, ...]:
    """Return what an award is, beyond its id (team_id is descriptive and left out)."""
    return tuple(award.get(k) for k in ("user_id", "rule", "badge", "points", "period", "status"))


@dataclass
class Awards:
    """The awards of one run's output topics, by id."""

    by_id: dict[str, tuple[Any, ...]]
    conflicts: list[str]  # ids seen with two identities
    duplicates: int  # records whose id was seen before


def collect_awards(bootstrap: str, topics: Topics, tag: str, *, committed_only: bool = False) -> Awards:
    """Read a run's points and badges topics and index the awards by id."""
    records = read_all(bootstrap, f"{topics.prefix}.{tag}.points", timeout=5, committed_only=committed_only)
    records += read_all(bootstrap, f"{topics.prefix}.{tag}.badges", timeout=5, committed_only=committed_only)
    awards = Awards({}, [], 0)
    for record in records:
        identity = award_identity(record)
        seen = awards.by_id.setdefault(record["award_id"], identity)
        if seen is not identity:
            awards.duplicates += 1
            if seen != identity:
                awards.conflicts.append(f"{record['award_id']}: {seen} vs {identity}")
    return awards


def run_reference(
    bootstrap: str, topics: Topics, workdir: Path, partitions: int, inputs: int, timeout: float = 240
) -> dict[str, tuple[Any, ...]]:
    """Run one uninterrupted worker over the topics' input; return its awards once they stop growing."""
    ref = WorkerProcess(
        bootstrap, topics, workdir, f"{topics.prefix}-ref", partitions, **output_env(topics, "ref")
    ).start()
    try:
        deadline = time.monotonic() + timeout
        expected: dict[str, tuple[Any, ...]] = {}
        while time.monotonic() < deadline:
            time.sleep(3)
            before = len(expected)
            expected = collect_awards(bootstrap, topics, "ref").by_id
            if expected and len(expected) == before and ref.processed() >= inputs:
                return expected
        raise TimeoutError(f"the reference run did not settle in {timeout} s:\n{ref.log_tail()}")
    finally:
        ref.stop()


def wait_for_awards(
    bootstrap: str, topics: Topics, tag: str, expected: dict[str, Any], timeout: float = 240
) -> Awards:
    """Read a run's awards (committed only) until they have the expected ids or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        got = collect_awards(bootstrap, topics, tag, committed_only=True)
        if got.by_id.keys() == expected.keys() or time.monotonic() > deadline:
            return got
        time.sleep(3)
