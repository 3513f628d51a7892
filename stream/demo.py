"""Show the product working: a worker, sample traffic, awards on screen (``make run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import orjson
from confluent_kafka import Consumer, TopicPartition

from stream import feed
from stream.rules import RulesError, load_rules
from stream.runtime.kafka_config import librdkafka_config
from stream.runtime.topics import TopicError, ensure_topics
from stream.settings import Settings

HOUR_MS = 3_600_000


def _sources(settings: Settings) -> dict[str, str]:
    return {kind: topic for topic, kind in settings.input_topics.items()}


def run_feed(
    settings: Settings, *, events: int, users: int, rate: float | None, seed: int, days: float = 2 / 24
) -> int:
    """Produce ``events`` synthetic events of the last ``days`` (default: two hours) to the input topics."""
    try:
        ensure_topics(settings)
    except TopicError as exc:
        sys.exit(f"stream: {exc}")
    now = int(time.time() * 1000)
    span = int(days * 24 * HOUR_MS)
    records = feed.generate(events, users=users, seed=seed, start_ms=now - span, span_ms=span - 1000)
    sent = feed.produce(librdkafka_config(settings), _sources(settings), records, rate=rate)
    print(f"fed {sent} records to {settings.bootstrap_servers}", file=sys.stderr)
    return sent


def _wait_healthy(settings: Settings, worker: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            sys.exit(f"stream: the worker exited with code {worker.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"stream: the worker did not answer {url} within {seconds:.0f} s")


def _end_offsets(consumer: Consumer, topic: str) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    positions = []
    for partition in metadata.partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        positions.append(TopicPartition(topic, partition, high))
    return positions


def run_demo(settings: Settings, *, events: int, seconds: float) -> None:
    """Start a worker, feed ``events`` sample events, print the awards they earn, stop the worker."""
    try:
        load_rules(settings.rules_file)
        ensure_topics(settings)
    except (RulesError, TopicError) as exc:
        sys.exit(f"stream: {exc}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "demo-worker.log"
    print(f"starting a worker (app {settings.app_id}, Kafka {settings.bootstrap_servers}); log: {log_path}")
    env = {**os.environ, "STREAM_LOG_LEVEL": os.environ.get("STREAM_LOG_LEVEL", "info")}
    with log_path.open("ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "stream", "worker"], env=env, stdout=log, stderr=log)
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": f"demo-{os.getpid()}",
            "enable.auto.commit": False,
        }
    )
    try:
        _wait_healthy(settings, worker, 120)
        outputs = [settings.topic_points, settings.topic_badges, settings.topic_deadletter]
        # Start reading the outputs where they end now: show only what this run earns.
        consumer.assign([tp for topic in outputs for tp in _end_offsets(consumer, topic)])
        run_feed(
            settings, events=events, users=max(20, events // 30), rate=None, seed=time.time_ns() % 1_000_000
        )
        print(f"awards arriving on {settings.topic_points} (points, user, rule, period, source event):")
        _show(consumer, settings, seconds)
    finally:
        consumer.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
    print(
        f"worker stopped. Kafka is still running (make kafka-stop stops it); "
        f"the query API was at http://{settings.web_host}:{settings.web_port}/users/<user_id>",
        file=sys.stderr,
    )


def _show(consumer: Consumer, settings: Settings, seconds: float) -> None:
    points: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    badges: list[str] = []
    dead: Counter[str] = Counter()
    shown = 0
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 8:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        quiet_since = time.monotonic()
        value = message.value()
        if value is None:
            continue
        record = orjson.loads(value)
        topic = message.topic()
        if topic == settings.topic_points:
            points[record["user_id"]] += record["points"]
            rules[record["rule"]] += record["points"]
            if shown < 25:
                print(
                    f"  +{record['points']:<3} {record['user_id']:<9} {record['rule']:<18} {record['period']:<10}"
                    f"  {record.get('reason', '')}"
                )
            elif shown == 25:
                print("  ... (more awards arriving; a summary follows)")
            shown += 1
        elif topic == settings.topic_badges:
            badges.append(f"{record['user_id']} -> {record['badge']} ({record['kind']})")
            if len(badges) <= 15:
                what = {
                    "level": "reached level",
                    "task": "completed task",
                    "achievement": "earned achievement",
                }
                period = f" ({record['period']})" if record.get("period") not in (None, "lifetime") else ""
                print(
                    f"  BADGE {record['user_id']} {what.get(record['kind'], record['kind'])} {record['badge']}{period}"
                )
        else:
            dead[record["reason"]] += 1
    print(f"\n{shown} point awards, {sum(points.values())} points, to {len(points)} users")
    print("points by rule: " + ", ".join(f"{rule} {n}" for rule, n in rules.most_common()))
    print("top users: " + ", ".join(f"{user} {n}" for user, n in points.most_common(5)))
    print(f"badges: {len(badges)}" + (f" (e.g. {badges[0]})" if badges else ""))
    if dead:
        print("dead letters: " + ", ".join(f"{reason} {n}" for reason, n in dead.items()))
