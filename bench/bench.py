"""Benchmark the worker against the client and framework ceilings and a quix-streams reference.

Run as ``.venv/bin/python bench/bench.py`` (``make bench``). In one run, on fresh topics: (a) a bare
confluent-kafka consumer decoding every record, (b) a Faust agent that only decodes (bench/decode_only.py),
(c) ``stream worker`` itself under each processing guarantee (``STREAM_PROCESSING_GUARANTEE``), measured
through its ``stream_events_total`` counter, (d) a quix-streams application doing the base rules
(bench/quix_reference.py, in the virtual environment of bench/requirements-quix.txt), and the pure
``Pipeline.run`` cost per event in this process; then the exactly_once worker's event-to-award latency at
half its sustained rate. The awards of (d) are checked against the pipeline's on the same events. Also in
this process: the pure engine alone (``Engine.apply``, one transaction per decoded event, events/s on one
core) and the state changelog bytes written per event (``batch.changes``), next to issue 5's figure. Progress
goes to stderr, the table to stdout. Every topic, consumer group, subprocess and temporary directory of the
run is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream.core.state import MemoryStore, StateCache
from stream.engine.layout import decode_value, encode_value
from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.events import decode
from stream.feed import generate, produce
from stream.pipeline import Pipeline, Record, Topics, partition_for
from stream.rules import load_rules
from stream.rules.versions import RuleBook
from stream.runtime.kafka_config import librdkafka_config
from stream.settings import Settings

_REPOSITORY = str(Path(__file__).resolve().parent.parent)
if _REPOSITORY not in sys.path:  # run as a script, sys.path[0] is bench/: bench.common needs the repository
    sys.path.insert(0, _REPOSITORY)

from bench.common import (  # noqa: E402
    DAY_MS,
    INPUTS,
    OUTPUTS,
    ROOT,
    TIMEZONE,
    free_port,
    progress_log,
    pythonpath,
    tail,
)

log = progress_log("bench")

GUARANTEES = ("at_least_once", "exactly_once")
DEFAULT_GUARANTEE = "exactly_once"  # the worker's default: the latency is measured under it
QUIX_GUARANTEES = {"at_least_once": "at-least-once", "exactly_once": "exactly-once"}
QUIX_SOURCES = ("message", "like", "login", "activity")  # the roster topic pays nothing: (d) skips it
# The rules bench/quix_reference.py implements: the pipeline's awards of these are what (d) must produce.
REFERENCE_RULES = frozenset(
    {
        "daily_login",
        "message_text",
        "message_voice",
        "message_video",
        "message_file",
        "message_image",
        "reply",
        "vote",
        "group_created",
        "like_given",
    }
)
PIPELINE_BATCH = 5000  # the worker's default STREAM_BATCH_MAX
TARGET_ENGINE = 40_000  # events/s of the pure engine on one core
# Bytes of state changelog per event of the issue-5 code (commit f9b2f99: one JSON document per user,
# rewritten whole when it changes): keys + values of its batch.states, on the bench's default data
# (200,000 records, 5,000 users, 3 days, seed 7), batches of 5,000, measured once with that commit's
# pipeline. The same measure of this code on the same data: 202.6.
ISSUE5_BYTES_PER_EVENT = 387
# The worker's sustained rate in issue 6's final `make bench` (per-user programme only, no group, team
# or board keys); issue 7's target: with every default rule, within 15% of it.
ISSUE6_RATE = {"at_least_once": 9_448, "exactly_once": 9_475}
TARGET_VS_ISSUE6 = 0.85
TARGET_ALO = 2.0  # c / b under at_least_once (and c >= d)
TARGET_EOS = 1.6  # c / b under exactly_once
START_TIMEOUT_S = 60.0
STALL_TIMEOUT_S = 60.0
LATENCY_SECONDS = 20.0
POLL_S = 0.2
_SAMPLE = re.compile(r"^stream_events_total(?:\{([^}]*)\})?\s+([0-9.eE+-]+)", re.MULTILINE)
_TOPIC_LABEL = re.compile(r'topic="([^"]*)"')
_LATENCY_BUCKET = re.compile(
    r'^stream_event_to_award_seconds_bucket\{le="([^"]+)"\}\s+([0-9.eE+-]+)', re.MULTILINE
)


def stop(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    """Stop a subprocess: SIGTERM, then SIGKILL after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    log(f"stopping {name} (pid {proc.pid})")
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def percentile(ordered: list[float], q: float) -> float:
    """Return the q-quantile of sorted values (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rate(count: int, seconds: float) -> float | None:
    """Return count / seconds, or None when it cannot be measured."""
    return count / seconds if seconds > 0 and count > 0 else None


def quix_python(explicit: str | None) -> str | None:
    """Return the Python that runs the quix-streams reference, or None when there is none.

    ``--quix-python`` or $BENCH_QUIX_PYTHON, else ``.venv-quix`` of the repository (``make bench`` makes
    it), else this interpreter if it can import quixstreams.
    """
    if explicit:
        return os.path.abspath(explicit)  # not resolve(): a venv's python is a symlink out of the venv
    local = ROOT / ".venv-quix" / "bin" / "python"
    if local.exists():
        return str(local)
    if importlib.util.find_spec("quixstreams") is not None:
        return sys.executable
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)


def pure_pipeline(
    records: list[tuple[str, str, dict[str, Any]]], topics: Topics, partitions: int
) -> tuple[float, Awards, float]:
    """Time ``Pipeline.run`` over ``records``; return µs/event, the reference rules' awards, bytes/event.

    Batches of ``PIPELINE_BATCH`` records (the worker's default), each on its user's partition, over a
    ``StateCache`` in front of a ``MemoryStore`` that takes every batch's changes, as the worker's flush
    does. The credits the batches emit are not fed back: this is the cost of the input records alone.
    Bytes/event: the keys and values of every batch's ``batch.changes`` (what the state changelog and
    the store are written), over all records; measured outside the timing.
    """
    book = RuleBook.of(load_rules(), ZoneInfo(TIMEZONE))
    store = MemoryStore()
    cache = StateCache(store, decode_value, encode_value)
    pipeline = Pipeline(Engine(book, Calendar(TIMEZONE)), topics, partitions, _now_ms, cache)
    dumps = orjson.dumps
    inputs = {source: topic for topic, source in topics.sources.items()}
    batch_records = []
    for offset, (source, user, value) in enumerate(records):
        key = user.encode()
        ts = value.get("ts", 0)
        batch_records.append(
            Record(inputs[source], partition_for(key, partitions), offset, key, dumps(value), ts)
        )
    awards = Awards()
    elapsed = 0.0
    written = 0
    clock = time.perf_counter
    for start in range(0, len(batch_records), PIPELINE_BATCH):
        chunk = batch_records[start : start + PIPELINE_BATCH]
        began = clock()
        batch = pipeline.run(chunk)
        by_partition: dict[int, dict[bytes, bytes | None]] = {}
        for key, (partition, raw) in batch.changes.items():
            by_partition.setdefault(partition, {})[key] = raw
        for partition, changes in by_partition.items():
            store.write(partition, changes)
        pipeline.trim()
        elapsed += clock() - began
        written += sum(len(key) + len(raw or b"") for key, (_, raw) in batch.changes.items())
        for _, rule, kind, points in batch.awards:
            if kind == "points" and rule in REFERENCE_RULES:
                awards.count += 1
                awards.points += points
    n = len(batch_records)
    return elapsed / n * 1e6, awards, written / n


def pure_engine(
    records: list[tuple[str, str, dict[str, Any]]], partitions: int, gc_every_s: float = 1.0
) -> tuple[float, int, float]:
    """Time ``Engine.apply`` alone over ``records``, decoded beforehand; return events/s, events, seconds.

    Full default rules, one ``Transaction`` per event over an in-memory ``StateCache`` (committed, as the
    pipeline does), in this one thread. Garbage collection as the worker's (stream/runtime/flush.py):
    ``gc.freeze`` after the set-up, then about every second ``gc.collect(1)`` and ``gc.freeze`` (in the
    timing). Credits are not fed back, as in ``pure_pipeline``.
    """
    book = RuleBook.of(load_rules(), ZoneInfo(TIMEZONE))
    engine = Engine(book, Calendar(TIMEZONE))
    cache = StateCache(MemoryStore(), decode_value, encode_value)
    now = _now_ms()
    events = []
    for source, _user, value in records:
        event = decode(source, orjson.dumps(value), None, now_ms=now, max_future_ms=book.max_future_ms)
        key = event.user_id.encode()
        events.append((event, key, partition_for(key, partitions)))
    gc.collect()
    gc.freeze()
    apply, begin = engine.apply, cache.begin
    clock = time.perf_counter
    began = clock()
    next_gc = began + gc_every_s
    for i, (event, key, partition) in enumerate(events):
        tx = begin(partition)
        apply(event, tx, key)
        tx.commit()
        if i & 1023 == 0 and clock() >= next_gc:
            gc.collect(1)
            gc.freeze()
            next_gc = clock() + gc_every_s
    seconds = clock() - began
    gc.unfreeze()
    return len(events) / seconds, len(events), seconds


@dataclass
class Awards:
    """Count point awards and sum their points."""

    count: int = 0
    points: int = 0

    def __str__(self) -> str:
        return f"{self.count:,} awards, {self.points:,} points"


@dataclass
class Results:
    """Hold everything a run measured; None where a measure is not available."""

    a: float | None = None
    b: float | None = None
    c: dict[str, float | None] = field(default_factory=dict)
    d: dict[str, float | None] = field(default_factory=dict)
    d_checks: dict[str, str] = field(default_factory=dict)  # guarantee -> "ok" or what differed
    pipeline_us: float | None = None
    engine_rate: float | None = None
    bytes_per_event: float | None = None
    latency: tuple[float, float, int] | None = None
    paced: float | None = None
    internal_bytes: dict[str, float | None] = field(
        default_factory=dict
    )  # guarantee -> bytes per input event


class Run:
    """Hold one benchmark run's names, resources and results; ``cleanup`` releases everything."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap: str = args.bootstrap
        # Brokers from --bootstrap, security from KAFKA_SECURITY_PROTOCOL & co. (the workers inherit those).
        self.client = librdkafka_config(Settings(bootstrap_servers=args.bootstrap))
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        prefix = f"bench.{self.run_id}."
        self.inputs = {source: prefix + f"in.{source}" for source in INPUTS}
        self.outputs = {name: prefix + f"out.{name}" for name in OUTPUTS}
        self.quix_outputs = {g: prefix + f"out.quix-{g}" for g in GUARANTEES}
        self.worker_ids = {g: f"bench-worker-{self.run_id}-{g}" for g in GUARANTEES}
        self.quix_ids = {g: f"bench-quix-{self.run_id}-{g}" for g in GUARANTEES}
        # Topics of the run: ours, the workers' internal ones (named after their app ids), quix's changelogs.
        self.prefixes = [
            prefix,
            f"bench-decode-{self.run_id}",
            f"bench-worker-{self.run_id}",
            f"changelog__bench-quix-{self.run_id}",
            f"repartition__bench-quix-{self.run_id}",
        ]
        self.groups = [
            f"bench-client-{self.run_id}",
            f"bench-latency-{self.run_id}",
            f"bench-check-{self.run_id}",
            f"bench-decode-{self.run_id}",
            *self.worker_ids.values(),
            *self.quix_ids.values(),
        ]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{self.run_id}-"))
        self.admin = AdminClient(self.client)
        self.procs: list[tuple[subprocess.Popen[bytes], str]] = []
        self.total = 0
        self.users = 0
        self.start_ms = 0
        self.span_ms = 0

    def topic_env(self) -> dict[str, str]:
        """Return the STREAM_TOPIC_* variables naming this run's topics."""
        env = {var: self.inputs[source] for source, var in INPUTS.items()}
        env.update({var: self.outputs[name] for name, var in OUTPUTS.items()})
        return env

    def create_topics(self) -> None:
        """Create this run's input and output topics, ``--partitions`` partitions each."""
        names = [*self.inputs.values(), *self.outputs.values(), *self.quix_outputs.values()]
        futures = self.admin.create_topics(
            [NewTopic(name, num_partitions=self.args.partitions, replication_factor=1) for name in names],
            operation_timeout=30,
        )
        for future in futures.values():
            future.result(60)
        log(f"created {len(names)} topics bench.{self.run_id}.* with {self.args.partitions} partitions")

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
        """Start a subprocess with its output in a log file of the run's temp dir."""
        log_path = self.tmp / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append((proc, name))
        return proc, log_path

    def cleanup(self) -> None:
        """Stop subprocesses, delete the run's topics and consumer groups, remove temp dirs."""
        for proc, name in self.procs:
            with contextlib.suppress(Exception):
                stop(proc, name)
        try:
            topics = self.admin.list_topics(timeout=15).topics
            doomed = [t for t in topics if any(t.startswith(p) for p in self.prefixes)]
            if doomed:
                for future in self.admin.delete_topics(doomed, operation_timeout=30).values():
                    with contextlib.suppress(Exception):
                        future.result(60)
                log(f"deleted {len(doomed)} topics")
            for future in self.admin.delete_consumer_groups(self.groups, request_timeout=15).values():
                with contextlib.suppress(Exception):  # a group that never formed cannot be deleted
                    future.result(30)
        except KafkaException as exc:  # cleanup is best effort: report and go on
            log(f"cleanup of Kafka resources failed: {exc!r}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- load -------------------------------------------------------------------------------------------

    def records(self) -> Any:
        """Yield the run's records, roster first: the same ones every time (a fixed seed)."""
        return generate(
            self.args.events - self.users,
            users=self.users,
            seed=7,
            start_ms=self.start_ms,
            span_ms=self.span_ms,
        )

    def load(self) -> None:
        """Produce ``--events`` records (roster first) with event times over the past three days."""
        self.users = max(2, min(5000, self.args.events // 40))
        now_ms = int(time.time() * 1000)
        self.span_ms = 3 * DAY_MS
        self.start_ms = now_ms - self.span_ms - 10 * 60_000  # all in the past, none older than 3 days 10 min
        began = time.perf_counter()
        self.total = produce(self.client, self.inputs, self.records())
        elapsed = time.perf_counter() - began
        log(f"produced {self.total:,} records in {elapsed:.1f} s ({self.total / elapsed:,.0f}/s)")

    # -- pure pipeline ---------------------------------------------------------------------------------

    def pipeline_cost(self) -> tuple[float, Awards, float]:
        """Time ``Pipeline.run`` over the run's records in this process; return µs/event, awards, bytes/event.

        See ``pure_pipeline``. The awards are those of the rules (d) implements.
        """
        log("pure pipeline: Pipeline.run in this process")
        topics = Topics(
            sources={self.inputs[source]: source for source in INPUTS},
            routed=f"bench-pipeline-{self.run_id}-routed",
            points=self.outputs["points"],
            badges=self.outputs["badges"],
            deadletter=self.outputs["deadletter"],
        )
        us, awards, written = pure_pipeline(list(self.records()), topics, self.args.partitions)
        log(f"pure pipeline: {us:.1f} µs/event; base rules: {awards}")
        log(
            f"state changelog: {written:,.0f} bytes written per event (keys + values of batch.changes, "
            f"batches of {PIPELINE_BATCH:,}; issue 5: {ISSUE5_BYTES_PER_EVENT:,} bytes/event)"
        )
        return us, awards, written

    def engine_rate(self) -> float:
        """Run the pure engine over the run's records in this process; return events/s (see ``pure_engine``)."""
        log("pure engine: Engine.apply in this process, one transaction per event")
        per_s, n, seconds = pure_engine(list(self.records()), self.args.partitions)
        log(
            f"pure engine: {n:,} events in {seconds:.2f} s, {per_s:,.0f} events/s (target > {TARGET_ENGINE:,}; "
            f"machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        return per_s

    # -- (a) ------------------------------------------------------------------------------------------------

    def client_ceiling(self) -> float | None:
        """Read every input record with a bare consumer, decoding each; return events/s."""
        log("(a) bare confluent-kafka consumer")
        consumer = Consumer(
            {
                **self.client,
                "group.id": f"bench-client-{self.run_id}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(list(self.inputs.values()))
        loads = orjson.loads
        seen = first_seen = 0
        first = last = 0.0
        deadline = time.monotonic() + 300
        try:
            while seen < self.total and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                    value = msg.value()
                    if msg.error() or value is None:
                        continue
                    loads(value)
                    seen += 1
                if seen and not first:
                    first = time.time()  # after the first batch: excludes joining the group
                    first_seen = seen
            last = time.time()
        finally:
            consumer.close()
        if seen < self.total:
            log(f"(a) saw only {seen:,} of {self.total:,} records")
            return None
        result = rate(seen - first_seen, last - first)
        log(f"(a) {seen:,} records, {result or 0:,.0f}/s")
        return result

    # -- (b) ------------------------------------------------------------------------------------------------

    def framework_ceiling(self) -> float | None:
        """Run the decode-only Faust app until it has seen every input record; return events/s."""
        log("(b) Faust decode-only agent")
        out = self.tmp / "decode.json"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "BENCH_APP_ID": f"bench-decode-{self.run_id}",
            "BENCH_TOPICS": ",".join(self.inputs.values()),
            "BENCH_COUNT": str(self.total),
            "BENCH_OUT": str(out),
            "BENCH_DATADIR": str(self.tmp / "decode-data"),
            "PYTHONPATH": pythonpath(),
        }
        argv = [sys.executable, "-m", "faust", "-A", "bench.decode_only", "worker", "-l", "warn"]
        proc, log_path = self.spawn("decode", argv, env)
        deadline = time.monotonic() + 300
        try:
            while not out.exists():
                if proc.poll() is not None:
                    log(f"(b) the Faust app exited with {proc.returncode}:\n{tail(log_path)}")
                    return None
                if time.monotonic() > deadline:
                    log(f"(b) timed out after 300 s:\n{tail(log_path)}")
                    return None
                time.sleep(POLL_S)
        finally:
            stop(proc, "decode-only Faust app")
        result = orjson.loads(out.read_bytes())
        measured = rate(result["count"] - 1, result["last"] - result["first"])
        log(f"(b) {result['count']:,} records, {measured or 0:,.0f}/s")
        return measured

    # -- (c) ------------------------------------------------------------------------------------------------

    def start_worker(self, guarantee: str) -> tuple[subprocess.Popen[bytes], Path, int] | None:
        """Start ``stream worker`` under ``guarantee``, fresh app id, group and data dir; None if it fails.

        Returns once /metrics answers. Started as ``python -m stream`` from the repository root, so this
        checkout's code runs whatever package the interpreter has installed.
        """
        log(f"(c) stream worker, {guarantee}")
        port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAM_APP_ID": self.worker_ids[guarantee],
            "STREAM_DATA_DIR": str(self.tmp / f"worker-data-{guarantee}"),
            "STREAM_WEB_PORT": str(port),
            "STREAM_TOPIC_PARTITIONS": str(self.args.partitions),
            "STREAM_PROCESSING_GUARANTEE": guarantee,
            "PYTHONPATH": pythonpath(),
            **self.topic_env(),
        }
        argv = [sys.executable, "-m", "stream", "worker"]
        proc, log_path = self.spawn(f"worker-{guarantee}", argv, env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log(f"(c) not available: the worker exited with {proc.returncode}:\n{tail(log_path)}")
                return None
            if self.events_total(port) is not None:
                return proc, log_path, port
            time.sleep(POLL_S)
        log(f"(c) not available: no /metrics within {START_TIMEOUT_S:.0f} s:\n{tail(log_path)}")
        stop(proc, "worker")
        return None

    def metrics(self, port: int) -> str | None:
        """Return the worker's /metrics page, None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return None

    def internal_bytes(self, port: int) -> float | None:
        """Return the bytes the worker sent to the internal topic per input record (its metrics)."""
        text = self.metrics(port)
        if text is None:
            return None
        sent = sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("stream_internal_bytes_total{")
        )
        return sent / self.total

    def counts(self, port: int) -> tuple[float, float] | None:
        """Return ``stream_events_total`` summed over the input topics and over all topics.

        The worker also counts records of its internal topics (re-keyed credits): those are work too, but
        only the input topics' sum says how far through the input it is. None if /metrics does not answer.
        """
        text = self.metrics(port)
        if text is None:
            return None
        inputs = {*self.inputs.values(), *self.inputs}
        on_inputs = everything = 0.0
        for labels, value in _SAMPLE.findall(text):
            topic = _TOPIC_LABEL.search(labels)
            everything += float(value)
            if topic is not None and topic.group(1) in inputs:
                on_inputs += float(value)
        return on_inputs, everything

    def award_latency_buckets(self, port: int) -> dict[float, float]:
        """Return the worker's own event-to-award histogram: upper bound (s) -> cumulative count."""
        text = self.metrics(port) or ""
        return {float(le): float(n) for le, n in _LATENCY_BUCKET.findall(text)}

    def events_total(self, port: int) -> float | None:
        """Return ``stream_events_total`` summed over the input topics, None if /metrics does not answer."""
        both = self.counts(port)
        return None if both is None else both[0]

    def settle(self, port: int, quiet_s: float = 1.0, limit_s: float = 60.0) -> None:
        """Wait until the count over all topics has not moved for quiet_s: internal topics drained too."""
        deadline = time.monotonic() + limit_s
        previous = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            both = self.counts(port)
            now = time.monotonic()
            total = None if both is None else both[1]
            if total != previous:
                previous, quiet_since = total, now
            elif now - quiet_since >= quiet_s:
                return
            time.sleep(POLL_S)
        log(f"the worker was still busy after {limit_s:.0f} s")

    def wait_for(
        self, proc: subprocess.Popen[bytes], port: int, target: float, stall_s: float
    ) -> tuple[float, float, float, float, float]:
        """Poll /metrics until the count reaches target or stalls; return (t0, c0, t1, c1, start count).

        t0, c0: the first poll where the count had moved past its start; t1, c1: the last poll.
        """
        start = self.events_total(port) or 0.0
        t0 = c0 = t1 = c1 = 0.0
        last_move = time.monotonic()
        previous = start
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}")
            now = time.monotonic()
            count = self.events_total(port)
            if count is not None and count != previous:
                previous = count
                last_move = now
                if not t0:
                    t0, c0 = now, count
                t1, c1 = now, count
            if count is not None and count >= target:
                return t0, c0, t1, c1, start
            if now - last_move > stall_s:
                return t0, c0, t1, c1, start
            time.sleep(POLL_S)

    def worker_rate(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> float | None:
        """Measure the worker's sustained events/s over the backlog of ``total`` records."""
        try:
            t0, c0, t1, c1, _ = self.wait_for(proc, port, self.total, STALL_TIMEOUT_S)
        except RuntimeError as exc:
            log(f"(c) {exc}:\n{tail(log_path)}")
            return None
        if c1 < self.total:
            stalled = f"no progress for {STALL_TIMEOUT_S:.0f} s"
            log(f"(c) the count stopped at {c1:,.0f} of {self.total:,} ({stalled})")
        measured = rate(int(c1 - c0), t1 - t0)
        if measured is None:
            log("(c) processed the backlog between two polls: run with more --events to measure it")
        else:
            log(f"(c) {c1:,.0f} events counted, sustained {measured:,.0f}/s")
        return measured

    # -- (d) ------------------------------------------------------------------------------------------------

    def reference_rate(
        self, python: str, guarantee: str, expected: Awards | None
    ) -> tuple[float | None, str]:
        """Run the quix-streams reference under ``guarantee`` over the input; return events/s and its check.

        The rate is the reference's input records (the roster topic aside) over the time from its first
        processed record to its last; it then commits its final checkpoint and exits. The check reads its
        output topic back (read_committed) and compares the awards with the pipeline's on the same events.
        """
        log(f"(d) quix-streams reference, {guarantee}")
        count = self.total - self.users
        out = self.tmp / f"quix-{guarantee}.json"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "BENCH_APP_ID": self.quix_ids[guarantee],
            "BENCH_TOPICS": ",".join(f"{source}={self.inputs[source]}" for source in QUIX_SOURCES),
            "BENCH_OUTPUT_TOPIC": self.quix_outputs[guarantee],
            "BENCH_GUARANTEE": QUIX_GUARANTEES[guarantee],
            "BENCH_COUNT": str(count),
            "BENCH_OUT": str(out),
            "BENCH_DATADIR": str(self.tmp / f"quix-data-{guarantee}"),
            "BENCH_TIMEZONE": TIMEZONE,
            "PYTHONPATH": pythonpath(),
        }
        proc, log_path = self.spawn(f"quix-{guarantee}", [python, "-m", "bench.quix_reference"], env)
        limit_s = 120 + count / 500  # no slower than 500 records/s
        try:
            proc.wait(limit_s)
        except subprocess.TimeoutExpired:
            log(f"(d) timed out after {limit_s:.0f} s")
        finally:
            stop(proc, f"quix reference ({guarantee})")
        if not out.exists():
            log(f"(d) the quix app exited with {proc.returncode} and no result:\n{tail(log_path)}")
            return None, "no result"
        result = orjson.loads(out.read_bytes())
        if result["count"] < count:
            log(f"(d) processed only {result['count']:,} of {count:,} records:\n{tail(log_path)}")
            return None, "incomplete"
        measured = rate(count - 1, result["last"] - result["first"])
        emitted = Awards(result["awards"], result["points"])
        log(
            f"(d) {count:,} records, {measured or 0:,.0f}/s; emitted {emitted}; "
            f"final commit and close took {result['end'] - result['last']:.1f} s"
        )
        published = self.read_awards_back(self.quix_outputs[guarantee])
        log(f"(d) output topic holds {published} (read_committed)")
        if expected is None:
            check = "not checked (no pipeline run)"
        elif published == expected and emitted == expected:
            check = "ok"
        else:
            check = f"MISMATCH: {published} published, {emitted} emitted, pipeline {expected}"
        log(f"(d) awards against the pipeline's ({expected}): {check}")
        return measured, check

    def read_awards_back(self, topic: str) -> Awards:
        """Read a topic of award records from the beginning to its end; return their count and points."""
        consumer = Consumer(
            {
                **self.client,
                "group.id": f"bench-check-{self.run_id}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )
        found = Awards()
        try:
            partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            pending = set(partitions)
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(msg.partition())
                        continue
                    found.count += 1
                    found.points += int(orjson.loads(msg.value() or b"{}").get("points", 0))
        finally:
            consumer.close()
        return found

    # -- latency --------------------------------------------------------------------------------------------

    def latency(self, proc: subprocess.Popen[bytes], port: int, paced: float) -> tuple[float, float, int]:
        """Produce a fresh batch paced at ``paced`` events/s; return award latency p50, p99 (ms), awards."""
        n = max(100, min(1_000_000, int(paced * LATENCY_SECONDS)))
        # Event i is stamped about a second before it is sent (sending starts after generating, paced at
        # the same rate as the stamps): fresh, never in the future, never late.
        now_ms = int(time.time() * 1000)
        span_ms = max(1, int(n / paced * 1000))
        batch = list(generate(n, seed=8, start_ms=now_ms - 1000, span_ms=span_ms, roster=False))
        sent: dict[str, float] = {}

        def on_sent(_source: str, value: dict[str, Any] | None, at: float) -> None:
            if value is not None:
                sent[value["event_id"]] = at

        arrivals: list[tuple[float, bytes]] = []
        done = threading.Event()
        ready = threading.Event()
        reader = threading.Thread(target=self.read_arrivals, args=(arrivals, ready, done), daemon=True)
        reader.start()
        if not ready.wait(30):
            raise RuntimeError("the points consumer did not get its partitions")
        base = self.events_total(port) or 0.0
        buckets = self.award_latency_buckets(port)
        log(f"latency: producing {n:,} fresh events at {paced:,.0f}/s")
        produce(self.client, self.inputs, batch, rate=paced, on_sent=on_sent)
        self.wait_for(proc, port, base + n, 15.0)
        self.settle(port)
        time.sleep(1.0)  # the awards of the last events are on their way
        done.set()
        reader.join(10)
        timed = []  # (sent, latency ms)
        for arrived, raw in arrivals:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                sent_at = sent.get(orjson.loads(raw).get("source_event_id"))
                if sent_at is not None:
                    timed.append((sent_at, (arrived - sent_at) * 1000))
        log(f"latency: {len(arrivals):,} awards read, {len(timed):,} for the paced events")
        if not timed:
            return float("nan"), float("nan"), 0
        timed.sort()
        halves = [
            sorted(ms for _, ms in part) for part in (timed[: len(timed) // 2], timed[len(timed) // 2 :])
        ]
        if all(halves):
            medians = " -> ".join(f"{percentile(half, 0.5):.1f}" for half in halves)
            log(
                f"latency: p50 of the first and the second half of the sends {medians} ms (growing: saturated)"
            )
        self.log_worker_latency(buckets, self.award_latency_buckets(port))
        latencies = sorted(ms for _, ms in timed)
        return percentile(latencies, 0.50), percentile(latencies, 0.99), len(latencies)

    def log_worker_latency(self, before: dict[float, float], after: dict[float, float]) -> None:
        """Log the paced phase's p50 and p99 bucket of the worker's own event-to-award histogram.

        The worker times from the input record's timestamp to the award acknowledged by Kafka: a check of
        the reader's figures that no consumer of the awards topic adds to.
        """
        delta = sorted((le, n - before.get(le, 0.0)) for le, n in after.items())
        total = delta[-1][1] if delta else 0.0
        if total <= 0:
            return
        bounds = [next(le for le, n in delta if n >= q * total) for q in (0.5, 0.99)]
        log(f"latency: the worker's own histogram puts p50 ≤ {bounds[0]:g} s, p99 ≤ {bounds[1]:g} s")

    def read_arrivals(
        self, arrivals: list[tuple[float, bytes]], ready: threading.Event, done: threading.Event
    ) -> None:
        """Read the points topic from its current end, noting each record's arrival wall clock.

        One record per ``poll()`` with short broker waits: a reader that fetches in batches (consume with
        a 100 ms timeout) would add its own wait to every latency. read_committed: under exactly_once the
        awards are written in transactions and count once committed.
        """
        topic = self.outputs["points"]
        consumer = Consumer(
            {
                **self.client,
                "group.id": f"bench-latency-{self.run_id}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "isolation.level": "read_committed",
            }
        )
        try:
            partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
            assignment = [
                TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1])
                for p in partitions
            ]
            consumer.assign(assignment)
            ready.set()
            poll = consumer.poll
            clock = time.time
            while not done.is_set():
                msg = poll(0.01)
                if msg is None:
                    continue
                arrived = clock()
                value = msg.value()
                if not msg.error() and value is not None:
                    arrivals.append((arrived, value))
        finally:
            consumer.close()


def table(r: Results) -> str:
    """Format the results as one table."""
    label_w, num_w, ratio_w = 34, 12, 9
    alo, eos = r.c.get("at_least_once"), r.c.get("exactly_once")
    d_alo, d_eos = r.d.get("at_least_once"), r.d.get("exactly_once")

    def num(x: float | None) -> str:
        return f"{x:>{num_w},.0f}" if x is not None else f"{'n/a':>{num_w}}"

    def ratio(x: float | None, y: float | None) -> float | None:
        return x / y if x is not None and y else None

    def times(x: float | None, width: int = ratio_w) -> str:
        return f"{x:>{width}.2f}" if x is not None else f"{'':>{width}}"

    def verdict(met: bool | None) -> str:
        return "" if met is None else (": met" if met else ": missed")

    def cost(fast: float | None, slow: float | None) -> str:
        return f"{(fast - slow) / fast:>{num_w}.1%}" if fast and slow is not None else f"{'n/a':>{num_w}}"

    def row(label: str, value: str, rest: str = "") -> str:
        return f"{label:<{label_w}}{value}{rest}".rstrip()

    alo_b, eos_b = ratio(alo, r.b), ratio(eos, r.b)
    alo_met = None
    if alo is not None and alo_b is not None:  # "≥ d" is judged only when (d) was measured
        alo_met = alo_b >= TARGET_ALO and (d_alo is None or alo >= d_alo)
    eos_met = None if eos_b is None else eos_b >= TARGET_EOS
    lines = [
        row("", f"{'events/s':>{num_w}}", f"{'vs (b)':>{ratio_w}}"),
        row("(a) client ceiling", num(r.a)),
        row("(b) framework ceiling", num(r.b)),
        row(
            "(c) worker, at_least_once",
            num(alo),
            f"{times(alo_b)}   (target ≥ {TARGET_ALO:.2f} and ≥ d{verdict(alo_met)})",
        ),
        row(
            "(c) worker, exactly_once",
            num(eos),
            f"{times(eos_b)}   (target ≥ {TARGET_EOS:.2f}{verdict(eos_met)})",
        ),
        row("(d) quix-streams base rules", num(d_alo), f"{times(ratio(d_alo, r.b))}   (at_least_once)"),
        row("(d) quix-streams, exactly_once", num(d_eos), times(ratio(d_eos, r.b))),
        *(
            row(
                f"(c) vs issue 6, {g}",
                times(ratio(r.c.get(g), ISSUE6_RATE[g]), num_w),
                f"   (issue 6: {ISSUE6_RATE[g]:,}/s; target ≥ {TARGET_VS_ISSUE6:.2f}"
                f"{verdict(None if r.c.get(g) is None else ratio(r.c.get(g), ISSUE6_RATE[g]) >= TARGET_VS_ISSUE6)})",
            )
            for g in ("at_least_once", "exactly_once")
        ),
        *(
            row(
                f"internal topic bytes/event, {g}",
                num(r.internal_bytes.get(g)),
                "   (credits, group, team, board)",
            )
            for g in ("at_least_once", "exactly_once")
            if r.internal_bytes.get(g) is not None
        ),
        row("c/d (at_least_once)", times(ratio(alo, d_alo), num_w)),
        row("c/d (exactly_once)", times(ratio(eos, d_eos), num_w)),
        row("exactly_once cost, worker", cost(alo, eos)),
        row("exactly_once cost, quix-streams", cost(d_alo, d_eos)),
    ]
    checks = ", ".join(f"{g} {check}" for g, check in r.d_checks.items())
    if checks:
        lines.append(row("(d) awards vs pipeline", f"{'':>{num_w}}", f"  {checks}"))
    if r.pipeline_us is not None:
        lines.append(
            row(
                "pure pipeline",
                f"{r.pipeline_us:>{num_w}.1f}",
                f" µs/event ({1e6 / r.pipeline_us:,.0f} events/s)",
            )
        )
    else:
        lines.append(row("pure pipeline", f"{'n/a':>{num_w}}"))
    if r.engine_rate is not None:
        met = r.engine_rate > TARGET_ENGINE
        lines.append(
            row(
                "pure engine, one core",
                num(r.engine_rate),
                f" events/s   (target > {TARGET_ENGINE:,}{verdict(met)})",
            )
        )
    if r.bytes_per_event is not None:
        lines.append(
            row(
                "state changelog bytes/event",
                f"{r.bytes_per_event:>{num_w},.0f}",
                f"   (issue 5: {ISSUE5_BYTES_PER_EVENT:,}; batches of {PIPELINE_BATCH:,})",
            )
        )
    if r.latency is not None and r.paced is not None and r.latency[2]:
        p50, p99, n = r.latency
        lines.append(
            row(
                "latency p50 / p99 (ms)",
                f"{f'{p50:.1f} / {p99:.1f}':>{num_w}}",
                f"  at {r.paced:,.0f} events/s ({DEFAULT_GUARANTEE}, {n:,} awards)",
            )
        )
    else:
        lines.append(row("latency p50 / p99 (ms)", f"{'n/a':>{num_w}}"))
    return "\n".join(lines)


def measure_worker(run: Run, results: Results, guarantee: str) -> None:
    """Measure the worker under one guarantee; under the default one, its latency at half that rate too."""
    started = run.start_worker(guarantee)
    if started is None:
        return
    proc, log_path, port = started
    try:
        c = results.c[guarantee] = run.worker_rate(proc, port, log_path)
        results.internal_bytes[guarantee] = run.internal_bytes(port)
        if c is not None and guarantee == DEFAULT_GUARANTEE:
            results.paced = c / 2
            run.settle(port)
            try:
                results.latency = run.latency(proc, port, results.paced)
                p50, p99, n = results.latency
                log(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {n:,} awards")
            except RuntimeError as exc:
                log(f"latency not measured: {exc}\n{tail(log_path)}")
    finally:
        stop(proc, f"worker ({guarantee})")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="records to produce (default 200000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka brokers (default $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--quix-python",
        default=os.environ.get("BENCH_QUIX_PYTHON"),
        help="Python with quixstreams for (d) (default $BENCH_QUIX_PYTHON, else .venv-quix/bin/python, "
        "else this one if it has quixstreams)",
    )
    args = parser.parse_args(argv)
    if args.events < 100:
        parser.error("--events must be at least 100")
    run = Run(args)
    log(f"run {run.run_id}: {args.events:,} events, {args.partitions} partitions, broker {args.bootstrap}")
    results = Results()
    try:
        run.create_topics()
        run.load()
        results.pipeline_us, expected, results.bytes_per_event = run.pipeline_cost()
        results.engine_rate = run.engine_rate()
        results.a = run.client_ceiling()
        results.b = run.framework_ceiling()
        # (d) before (c): the latency measure adds records to the input topics.
        python = quix_python(args.quix_python)
        if python is None:
            log("(d) not available: no Python with quixstreams (make bench installs .venv-quix)")
        else:
            for guarantee in GUARANTEES:
                results.d[guarantee], results.d_checks[guarantee] = run.reference_rate(
                    python, guarantee, expected
                )
        for guarantee in GUARANTEES:  # the default, exactly_once, last: its latency is measured after it
            measure_worker(run, results, guarantee)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        run.cleanup()
    sys.stderr.flush()
    print(table(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
