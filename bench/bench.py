"""Benchmark the worker against the client and framework ceilings on a real broker.

Run as ``.venv/bin/python bench/bench.py`` (``make bench``). In one run, on fresh topics: (a) a bare
confluent-kafka consumer decoding every record, (b) a Faust agent that only decodes (bench/decode_only.py),
(c) ``stream worker`` itself, measured through its ``stream_events_total`` counter; then the worker's
event-to-award latency at half its sustained rate. Progress goes to stderr, the table to stdout. Every topic,
consumer group, subprocess and temporary directory of the run is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream.feed import generate, produce
from stream.runtime.kafka_config import librdkafka_config
from stream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
INPUTS = {
    "message": "STREAM_TOPIC_MESSAGES",
    "like": "STREAM_TOPIC_LIKES",
    "login": "STREAM_TOPIC_LOGINS",
    "activity": "STREAM_TOPIC_ACTIVITIES",
    "member": "STREAM_TOPIC_MEMBERS",
}
OUTPUTS = {
    "points": "STREAM_TOPIC_POINTS",
    "badges": "STREAM_TOPIC_BADGES",
    "deadletter": "STREAM_TOPIC_DEADLETTER",
}
DAY_MS = 86_400_000
START_TIMEOUT_S = 60.0
STALL_TIMEOUT_S = 60.0
LATENCY_SECONDS = 20.0
POLL_S = 0.2
_T0 = time.monotonic()
_SAMPLE = re.compile(r"^stream_events_total(?:\{([^}]*)\})?\s+([0-9.eE+-]+)", re.MULTILINE)
_TOPIC_LABEL = re.compile(r'topic="([^"]*)"')


def log(message: str) -> None:
    """Print one progress line to stderr."""
    print(f"[bench {time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    """Return the last lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


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
        self.prefixes = [prefix, f"bench-decode-{self.run_id}", f"bench-worker-{self.run_id}"]
        self.groups = [f"bench-client-{self.run_id}", f"bench-latency-{self.run_id}", *self.prefixes[1:]]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{self.run_id}-"))
        self.admin = AdminClient(self.client)
        self.procs: list[tuple[subprocess.Popen[bytes], str]] = []
        self.total = 0

    def topic_env(self) -> dict[str, str]:
        """Return the STREAM_TOPIC_* variables naming this run's topics."""
        env = {var: self.inputs[source] for source, var in INPUTS.items()}
        env.update({var: self.outputs[name] for name, var in OUTPUTS.items()})
        return env

    def create_topics(self) -> None:
        """Create this run's input and output topics, ``--partitions`` partitions each."""
        names = [*self.inputs.values(), *self.outputs.values()]
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

    def load(self) -> None:
        """Produce ``--events`` records (roster first) with event times over the past three days."""
        users = max(2, min(5000, self.args.events // 40))
        now_ms = int(time.time() * 1000)
        span = 3 * DAY_MS
        start = now_ms - span - 10 * 60_000  # all in the past, none older than 3 days and 10 minutes
        records = generate(self.args.events - users, users=users, seed=7, start_ms=start, span_ms=span)
        began = time.perf_counter()
        self.total = produce(self.client, self.inputs, records)
        elapsed = time.perf_counter() - began
        log(f"produced {self.total:,} records in {elapsed:.1f} s ({self.total / elapsed:,.0f}/s)")

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
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
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

    def start_worker(self) -> tuple[subprocess.Popen[bytes], Path, int] | None:
        """Start ``stream worker`` on this run's topics; return it once /metrics answers, else None."""
        log("(c) stream worker")
        exe = BIN / "stream"
        if not exe.exists():
            log(f"(c) not available: {exe} does not exist")
            return None
        port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAM_APP_ID": f"bench-worker-{self.run_id}",
            "STREAM_DATA_DIR": str(self.tmp / "worker-data"),
            "STREAM_WEB_PORT": str(port),
            "STREAM_TOPIC_PARTITIONS": str(self.args.partitions),
            **self.topic_env(),
        }
        proc, log_path = self.spawn("worker", [str(exe), "worker"], env)
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

    def counts(self, port: int) -> tuple[float, float] | None:
        """Return ``stream_events_total`` summed over the input topics and over all topics.

        The worker also counts records of its internal topics (re-keyed credits): those are work too, but
        only the input topics' sum says how far through the input it is. None if /metrics does not answer.
        """
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        inputs = {*self.inputs.values(), *self.inputs}
        on_inputs = everything = 0.0
        for labels, value in _SAMPLE.findall(text):
            topic = _TOPIC_LABEL.search(labels)
            everything += float(value)
            if topic is not None and topic.group(1) in inputs:
                on_inputs += float(value)
        return on_inputs, everything

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
        reader = threading.Thread(target=self.read_awards, args=(arrivals, ready, done), daemon=True)
        reader.start()
        if not ready.wait(30):
            raise RuntimeError("the points consumer did not get its partitions")
        base = self.events_total(port) or 0.0
        log(f"latency: producing {n:,} fresh events at {paced:,.0f}/s")
        produce(self.client, self.inputs, batch, rate=paced, on_sent=on_sent)
        self.wait_for(proc, port, base + n, 15.0)
        self.settle(port)
        time.sleep(1.0)  # the awards of the last events are on their way
        done.set()
        reader.join(10)
        latencies = []
        for arrived, raw in arrivals:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                sent_at = sent.get(orjson.loads(raw).get("source_event_id"))
                if sent_at is not None:
                    latencies.append((arrived - sent_at) * 1000)
        latencies.sort()
        log(f"latency: {len(arrivals):,} awards read, {len(latencies):,} for the paced events")
        if not latencies:
            return float("nan"), float("nan"), 0
        return percentile(latencies, 0.50), percentile(latencies, 0.99), len(latencies)

    def read_awards(
        self, arrivals: list[tuple[float, bytes]], ready: threading.Event, done: threading.Event
    ) -> None:
        """Read the points topic from its current end, noting each record's arrival wall clock."""
        topic = self.outputs["points"]
        consumer = Consumer(
            {
                **self.client,
                "group.id": f"bench-latency-{self.run_id}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
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
            while not done.is_set():
                for msg in consumer.consume(num_messages=1000, timeout=0.1):
                    arrived = time.time()
                    value = msg.value()
                    if not msg.error() and value is not None:
                        arrivals.append((arrived, value))
        finally:
            consumer.close()


def table(
    a: float | None,
    b: float | None,
    c: float | None,
    lat: tuple[float, float, int] | None,
    paced: float | None,
) -> str:
    """Format the results as one table."""

    def num(x: float | None) -> str:
        return f"{x:>12,.0f}" if x is not None else f"{'not available':>12}"

    def pct(x: float | None, y: float | None) -> str:
        return f"{x / y:>12.1%}" if x is not None and y else f"{'-':>12}"

    lines = [
        f"{'':<28}{'events/s':>12}",
        f"{'(a) client ceiling':<28}{num(a)}",
        f"{'(b) framework ceiling':<28}{num(b)}",
        f"{'(c) this worker':<28}{num(c)}",
        f"{'c/a':<28}{pct(c, a)}",
        f"{'c/b':<28}{pct(c, b)}",
    ]
    if lat is not None and paced is not None and lat[2]:
        lines.append(f"{'latency p50 (ms)':<28}{lat[0]:>12,.1f}")
        lines.append(f"{'latency p99 (ms)':<28}{lat[1]:>12,.1f}")
        lines.append(f"{'paced rate (events/s)':<28}{paced:>12,.0f}   ({lat[2]:,} awards)")
    else:
        lines.append(f"{'latency p50 / p99 (ms)':<28}{'not available':>12}")
    return "\n".join(lines)


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
    args = parser.parse_args(argv)
    if args.events < 100:
        parser.error("--events must be at least 100")
    run = Run(args)
    log(f"run {run.run_id}: {args.events:,} events, {args.partitions} partitions, broker {args.bootstrap}")
    a = b = c = paced = None
    lat = None
    try:
        run.create_topics()
        run.load()
        a = run.client_ceiling()
        b = run.framework_ceiling()
        started = run.start_worker()
        if started is not None:
            proc, log_path, port = started
            c = run.worker_rate(proc, port, log_path)
            if c is not None:
                paced = c / 2
                run.settle(port)
                try:
                    lat = run.latency(proc, port, paced)
                    log(f"latency: p50 {lat[0]:.1f} ms, p99 {lat[1]:.1f} ms over {lat[2]:,} awards")
                except RuntimeError as exc:
                    log(f"latency not measured: {exc}\n{tail(log_path)}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        run.cleanup()
    sys.stderr.flush()
    print(table(a, b, c, lat, paced), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
