"""End to end over TLS and SASL: a worker, the feed and a reader that reach Kafka only through SASL_SSL.

The module starts its own broker with ``deploy/kafka/kafka.sh`` on free ports, with a SASL_SSL listener
next to the PLAINTEXT one: a throw-away CA, a broker certificate for 127.0.0.1 and one user who may log
in with PLAIN or SCRAM. Every client here is given only the SASL_SSL address. The shared broker is not
touched.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Producer

from stream.runtime.kafka_config import librdkafka_config
from stream.settings import Settings
from tests.broker import KAFKA_SH
from tests.e2e.harness import ROOT, Topics, WorkerProcess, free_port, produce, read_all
from tests.e2e.test_scripted_week import EXPECTED_POINTS, build_script
from tests.tls import make_broker_tls

pytestmark = pytest.mark.e2e

PARTITIONS = 3
USER = "rewards-worker"
FEED_SEED = 4242


@dataclass(frozen=True)
class SecureBroker:
    """A broker's SASL_SSL listener and what a client needs to log in to it."""

    bootstrap: str
    ca_file: Path
    password: str

    def env(self, mechanism: str, password: str | None = None) -> dict[str, str]:
        """Return the worker settings that log in as USER with ``mechanism`` (and ``password``)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": self.password if password is None else password,
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def client(self, mechanism: str) -> dict[str, str]:
        """Return the librdkafka settings of the same login, built as the worker builds its own."""
        return librdkafka_config(Settings.model_validate(self.env(mechanism)))


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _kafka_sh(command: str, env: dict[str, str], timeout: float) -> None:
    done = subprocess.run(
        ["bash", str(KAFKA_SH), command],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kafka.sh {command} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    tls = make_broker_tls(tmp_path_factory.mktemp("tls"))
    password = secrets.token_urlsafe(16)
    port, controller_port, sasl_ssl_port = _distinct_free_ports(3)
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_SASL_SSL_PORT": str(sasl_ssl_port),
        "KAFKA_SSL_KEYSTORE": str(tls.keystore),
        "KAFKA_SSL_KEYSTORE_PASSWORD": tls.keystore_password,
        "KAFKA_SASL_USERS": f"{USER}:{password}",
        "KAFKA_HEAP_OPTS": "-Xmx512m -Xms128m",
        "KAFKA_START_TIMEOUT": "90",
    }
    env.pop("KAFKA_SASL_USERS_FILE", None)
    try:
        _kafka_sh("start", env, timeout=180)
        yield SecureBroker(f"127.0.0.1:{sasl_ssl_port}", tls.ca_file, password)
    finally:
        _kafka_sh("stop", env, timeout=60)
        for leftover in ("broker-{}.log", "broker-{}.out", ".lock-{}"):
            (ROOT / ".cache" / "kafka" / leftover.format(port)).unlink(missing_ok=True)


def _points_by_user(secure: SecureBroker, topics: Topics, client: dict[str, str]) -> dict[str, int]:
    awards = read_all(secure.bootstrap, topics.output("points"), timeout=5, client=client)
    by_user: dict[str, int] = defaultdict(int)
    for award in {a["award_id"]: a for a in awards}.values():
        by_user[award["user_id"]] += award["points"]
    return dict(by_user)


def _stream(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_worker_and_feed_earn_awards_through_sasl_ssl(secure_broker: SecureBroker, tmp_path: Path) -> None:
    topics = Topics()
    scram = secure_broker.client("SCRAM-SHA-256")
    worker = WorkerProcess(
        secure_broker.bootstrap,
        topics,
        tmp_path,
        f"{topics.prefix}-a",
        PARTITIONS,
        **secure_broker.env("SCRAM-SHA-256"),
    ).start()
    try:
        # The scripted week, produced through SASL_SSL, earns exactly its hand-computed points.
        script, _ = build_script()
        produce(
            Producer({**scram, "partitioner": "consistent_random", "linger.ms": 5}), topics, script.records
        )
        deadline = time.monotonic() + 60
        totals: dict[str, int] = {}
        while time.monotonic() < deadline and totals != EXPECTED_POINTS:
            totals = _points_by_user(secure_broker, topics, scram)
            time.sleep(0.5)
        assert totals == EXPECTED_POINTS, worker.log_tail()

        # `stream feed` logs in with PLAIN; the worker awards its events too.
        feed_env = {**worker.env, **secure_broker.env("PLAIN")}
        fed = _stream(["feed", "--events", "200", "--users", "20", "--seed", str(FEED_SEED)], feed_env)
        assert fed.returncode == 0, fed.stderr
        deadline = time.monotonic() + 60
        feed_awards: list[dict[str, object]] = []
        while time.monotonic() < deadline and not feed_awards:
            awards = read_all(secure_broker.bootstrap, topics.output("points"), timeout=5, client=scram)
            feed_awards = [a for a in awards if str(a["source_event_id"]).startswith(f"{FEED_SEED}-")]
            time.sleep(0.5)
        assert feed_awards, worker.log_tail()
    finally:
        worker.stop()


def test_a_wrong_password_stops_the_feed_and_the_worker_with_the_reason(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    topics = Topics()
    for mechanism in ("SCRAM-SHA-256", "PLAIN"):
        env = {
            **os.environ,
            **topics.env(),
            **secure_broker.env(mechanism, password="not-" + secure_broker.password),
        }
        began = time.monotonic()
        fed = _stream(["feed", "--events", "10"], env)
        assert fed.returncode != 0
        refused = [line for line in fed.stderr.splitlines() if line.startswith("stream: ")]
        assert refused, fed.stderr
        assert f"Kafka at {secure_broker.bootstrap} refused this client" in refused[0]
        assert "SASL authentication error" in refused[0]
        assert time.monotonic() - began < 30

    worker = WorkerProcess(
        secure_broker.bootstrap,
        topics,
        tmp_path,
        f"{topics.prefix}-a",
        PARTITIONS,
        **secure_broker.env("SCRAM-SHA-512", password="not-" + secure_broker.password),
    )
    with pytest.raises(RuntimeError, match="worker exited with 1") as failure:
        worker.start(timeout=60)
    assert "SASL authentication error" in str(failure.value)
