"""Find or start the Kafka broker the tests run against.

``ensure_broker()`` returns bootstrap servers, trying in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set (``make test`` sets it and starts the broker with ``make kafka``);
2. a throwaway container, when a Docker engine answers;
3. the local broker of ``deploy/kafka/kafka.sh`` on ``127.0.0.1:$KAFKA_PORT`` (default 9092), started
   if it does not run yet.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"

# testcontainers' KafkaContainer drives the start-up scripts of Confluent's image, so it cannot run
# apache/kafka; cp-kafka 7.9 is Apache Kafka 3.9, in KRaft mode here. TEST_KAFKA_IMAGE overrides it.
CONTAINER_IMAGE = os.environ.get("TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0")

_lock = threading.Lock()
_bootstrap: str | None = None


def ensure_broker() -> str:
    """Return the bootstrap servers of a running Kafka broker, starting one if none is configured.

    The answer is computed once per process. A container is stopped when the process exits; the local
    broker keeps running for the next test run (``make kafka-stop`` stops it).
    """
    global _bootstrap
    with _lock:
        if _bootstrap is None:
            _bootstrap = _find_or_start()
        return _bootstrap


def _find_or_start() -> str:
    """Pick the first broker source that works, in the order the module docstring gives."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        return configured
    if _docker_answers():
        return _start_container()
    return _start_local()


def _docker_answers(timeout: float = 5.0) -> bool:
    """Tell whether a Docker engine responds to ``docker info`` within ``timeout`` seconds."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run(
            [docker, "info"], capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _start_container() -> str:
    """Start a single-node KRaft broker in a container and stop it when the process exits."""
    from testcontainers.community.kafka import KafkaContainer

    container = KafkaContainer(CONTAINER_IMAGE).with_kraft()
    container.start(timeout=180)
    atexit.register(container.stop)
    return str(container.get_bootstrap_server())


def _start_local() -> str:
    """Start the broker of ``deploy/kafka/kafka.sh`` (a no-op when it runs) and return its address.

    The first start fetches Kafka from Maven Central, hence the generous timeout.
    """
    port = os.environ.get("KAFKA_PORT", "9092")
    env = {**os.environ, "KAFKA_PORT": port}
    try:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), "start"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{KAFKA_SH} start did not finish within {exc.timeout:.0f}s") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"{KAFKA_SH} start failed (exit {done.returncode}):\n{done.stdout}{done.stderr}".rstrip()
        )
    return f"127.0.0.1:{port}"
