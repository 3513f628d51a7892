"""Show the product working: a worker, sample traffic, awards on screen (``make run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter

import orjson
from confluent_kafka import Consumer, TopicPartition

from stream import feed
from stream.client import ApiError, Client, local_url, segment
from stream.explain import explain, iso_week
from stream.report import default_days, economy_json, format_economy, format_funnel, funnel_json, last_week
from stream.rules import RulesError, load_rules
from stream.runtime.kafka_config import librdkafka_config
from stream.runtime.topics import TopicError, ensure_topics
from stream.settings import Settings

HOUR_MS = 3_600_000


def _sources(settings: Settings) -> dict[str, str]:
    return {kind: topic for topic, kind in settings.input_topics.items()}


def run_feed(
    settings: Settings,
    *,
    events: int,
    users: int,
    rate: float | None,
    seed: int,
    days: float = 2 / 24,
    invites: float = 0.02,
) -> int:
    """Produce ``events`` synthetic events of the last ``days`` (default: two hours) to the input topics.

    ``invites`` adds invitation traffic (registrations of new users who then log in and speak) on top.
    """
    try:
        ensure_topics(settings)
    except TopicError as exc:
        sys.exit(f"stream: {exc}")
    now = int(time.time() * 1000)
    span = int(days * 24 * HOUR_MS)
    records = feed.generate(
        events, users=users, seed=seed, start_ms=now - span, span_ms=span - 1000, invites=invites
    )
    sent = feed.produce(librdkafka_config(settings), _sources(settings), records, rate=rate)
    print(f"fed {sent} records to {settings.bootstrap_servers}", file=sys.stderr)
    return sent


def _wait_healthy(settings: Settings, worker: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    url = f"{local_url(settings)}/health"
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


def _wait_consumed(settings: Settings, topic: str, seconds: float) -> bool:
    """Wait until the worker's group has committed every record of ``topic``; return whether it did."""
    consumer = Consumer({**librdkafka_config(settings), "group.id": settings.app_id})
    try:
        ends = _end_offsets(consumer, topic)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            committed = {tp.partition: tp.offset for tp in consumer.committed(ends, timeout=10)}
            if all(committed.get(tp.partition, -1) >= tp.offset for tp in ends if tp.offset > 0):
                return True
            time.sleep(0.5)
        return False
    finally:
        consumer.close()


def _feed_demo(settings: Settings, records: list[feed.Record], rate: float) -> None:
    """Produce the roster, wait until the worker applied it, then the events at ``rate`` a second.

    Newcomers are known by their ``joined_at`` before their first event counts (most active newcomer), and
    the events are paced so that the worker reads them in event-time order across the input topics: fed all
    at once, nine days of one topic could be read before another's, and a week's boards would close before
    some of its events arrive (``stream_board_late_total``).
    """
    config = librdkafka_config(settings)
    members = [r for r in records if r[0] == "member"]
    events = [r for r in records if r[0] != "member"]
    feed.produce(config, _sources(settings), members)
    if not _wait_consumed(settings, settings.topic_members, 30):
        print("  (the worker had not applied the roster after 30 s; feeding the events anyway)")
    feed.produce(config, _sources(settings), events, rate=rate)


def run_demo(
    settings: Settings, *, events: int, seconds: float, days: float = 9.0, rate: float = 250.0
) -> None:
    """Start a worker, feed ``events`` sample events of the last ``days``, print the awards they earn, then
    ``stream explain`` of one user and ``stream report economy`` of last week; stop the worker."""
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
        now = int(time.time() * 1000)
        span = int(days * 24 * HOUR_MS)
        records = list(
            feed.generate(
                events,
                users=max(20, events // 30),
                seed=time.time_ns() % 1_000_000,
                start_ms=now - span,
                span_ms=span - 1000,
                invites=0.02,
            )
        )
        print(
            f"feeding {events} sample events of the last {days:g} days at {rate:g} a second "
            f"(~{events / rate:.0f} s), after the roster of {max(20, events // 30)} users"
        )
        failures: list[Exception] = []
        done = threading.Event()

        def produce() -> None:
            try:
                _feed_demo(settings, records, rate)
            except Exception as exc:  # noqa: BLE001 - raised again in the main thread, after the awards
                failures.append(exc)
            finally:
                done.set()

        threading.Thread(target=produce, name="demo-feed", daemon=True).start()
        print(f"awards arriving on {settings.topic_points} (points, user, rule, period, reason):")
        points = _show(consumer, settings, seconds, done)
        if failures:
            raise failures[0]
        _explain_and_report(settings, points)
    finally:
        consumer.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
    print(
        f"worker stopped. Kafka is still running (make kafka-stop stops it); "
        f"the query API was at {local_url(settings)}/users/<user_id>",
        file=sys.stderr,
    )


def _interesting(user: dict[str, object]) -> int:
    """Return how many kinds of points-stopping entries (ignored reasons, caps) a user has this week."""
    week = user.get("this_week")
    days = user.get("days")
    if not isinstance(week, dict) or not isinstance(days, dict):
        return 0
    reasons = {
        reason
        for day, record in days.items()
        if iso_week(day) == week.get("week") and isinstance(record, dict)
        for reason in record.get("ignored", {})
    }
    return len(reasons)


def _explain_and_report(settings: Settings, points: Counter[str]) -> None:
    """Print ``stream explain`` of a user who earned awards (the one with the most kinds of ignored events
    and caps this week, to show them), ``stream report economy`` of last week and ``stream report
    invites`` of the last 7 days, from this worker's API."""
    client = Client(local_url(settings))
    try:
        chosen, best = None, -1
        for user_id, _ in points.most_common(300):  # the most points first: ties go to them
            score = _interesting(client.get(f"/users/{segment(user_id)}"))
            if score > best:
                chosen, best = user_id, score
        if chosen is not None:
            print(f"\n$ stream explain {chosen}")
            print(explain(client, chosen, timezone=settings.timezone))
        week = last_week(int(time.time() * 1000), settings.timezone)
        print(f"\n$ stream report economy --week {week}")
        print(format_economy(orjson.loads(economy_json(client, week)), settings.timezone))
        first, last = default_days(None, None, int(time.time() * 1000), settings.timezone)
        print(f"\n$ stream report invites --from {first} --to {last}")
        print(format_funnel(orjson.loads(funnel_json(client, first, last))))
    except ApiError as exc:
        print(f"stream demo: the query API did not answer: {exc}", file=sys.stderr)


def _show(consumer: Consumer, settings: Settings, seconds: float, fed: threading.Event) -> Counter[str]:
    """Print awards as they arrive until the feed is done and the outputs were quiet for 8 s (at most
    ``seconds`` after the feed ends); return the points of each user."""
    points: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    badges: list[str] = []
    dead: Counter[str] = Counter()
    shown = 0
    deadline = None
    quiet_since = time.monotonic()
    while True:
        now = time.monotonic()
        if fed.is_set():
            if deadline is None:  # the feed just ended: wait for what it produced
                deadline, quiet_since = now + seconds, now
            if now > deadline or now - quiet_since > 8:
                break
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
                    "title": "won the weekly title",
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
    return points
