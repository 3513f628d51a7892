"""Measure how long a worker with a fresh data dir takes to restore its users table from the changelog.

Run as ``.venv/bin/python bench/restore.py --users 1000000 --partitions 8`` (``make bench-restore``). In one
run, for a fresh app id: create the worker's topics (inputs, outputs, ``<app>-routed``, and the compacted
changelog ``<app>-users-changelog``, all with ``--partitions`` partitions); build realistic user states
with the real engine (default rules, Asia/Shanghai calendar) over synthetic events of ``stream.feed``, in
a ``StateCache`` (one transaction per event, credits applied to their receivers); write each user's state
keys (``<user>\\0core``, ``d:<day>``, ``s:<day>``, ``w:<week>``, ... as ``take_changes()`` returns them)
to the changelog in Kafka transactions, each on its user's murmur2 partition like the worker's own
changelog records, so the restore reads past commit markers as in production; start ``stream
worker`` with an empty data dir and time it from process start to ``[^Worker]: Ready`` (Faust logs it
once table recovery is complete and only then starts the web server), with the recovery phases from
the worker's log; then check that ``GET /users/<id>`` serves the produced state of a random sample of
users (``stream/engine/view.py``'s ``user_view`` of the keys produced). Running the engine for every user
of a large run is slow, so ``--distinct`` states are built and each is written under several users' keys
(its keys with the user part replaced; the output says how many).

Progress goes to stderr, the table to stdout. Every topic, consumer group, subprocess and temporary
directory of the run is removed at the end. Figures vary with the load of the machine: on a shared one,
run it more than once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream.core.state import MemoryStore, StateCache
from stream.engine.layout import SEPARATOR, decode_value, encode_value, prefix
from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.engine.view import user_view
from stream.events import InvalidEvent, decode
from stream.feed import generate
from stream.pipeline import partition_for
from stream.rules import load_rules
from stream.rules.versions import RuleBook
from stream.runtime.app import STATE_TABLE
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

log = progress_log("restore")

SPAN_DAYS = 14  # event times of the synthetic traffic: the two weeks before the run
POLL_S = 0.1
# The worker's log lines that mark the phases of a start, in the order they appear (faust/tables/recovery.py,
# faust/worker.py); the first occurrence of each counts. Between "generation id" and "offsets at start of
# reading", stream/runtime/recovery.py scans back from each changelog partition's end to its last committed
# record.
PHASES = (
    ("starting", "[^Worker]: Starting", "interpreter up, worker starting"),
    ("assigned", "generation id", "partitions assigned, recovery begins"),
    ("ends", "active offsets at start of reading", "changelog ends found (last committed records)"),
    ("reading", "Restoring state from changelog topics", "reading the changelog"),
    ("read", "Done reading from changelog topics", "changelog read"),
    ("worker_ready", "Worker ready", "recovery complete, streams resumed"),
    ("ready", "[^Worker]: Ready", "web server up: ready"),
)
PROFILE_RATE = 100  # py-spy samples per second
# The parts of the restore path a profile sample is charged to: the first part one of whose marks is in the
# sample's stack. The marks include frames below the part's root because py-spy does not always walk a
# coroutine's stack to the root: a partial stack is charged by the functions it shows.
PARTS = (
    ("RocksDB writes (Store.apply_changelog_batch)", ("apply_changelog_batch",)),
    (
        "Faust's recovery loop, per record: wait_for(queue.get()), need_recovery() (_slurp_changelogs)",
        ("_slurp_changelogs", "Recovery.", "wait_for (", "Queue.get ("),
    ),
    (
        "Faust's fetcher, per record: wait_first() tasks, Message, Event, conductor, queue (Fetcher._fetcher)",
        (
            "Fetcher._fetcher",
            "_drain_messages",
            "wait_first",
            "wait (asyncio/tasks.py)",
            "Event.wait",
            "on_message",
            "create_event",
            "Schema.",
            "ProducerBuffer.",
            "put_nowait",
        ),
    ),
    ("aiokafka's consumer thread: fetch requests, record batch decoding", ("WorkerThread.run", "aiokafka/")),
    (
        "asyncio event loop itself: select, running and scheduling the callbacks of the above",
        ("run_forever", "_run_once", "Handle._run"),
    ),
)
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
_REMAINING = re.compile(r"total remaining=(\d+)")


def user_id(i: int) -> str:
    """Return the id of the i-th user of the run."""
    return f"u{i:07d}"


def stamp(line: str) -> float | None:
    """Return the wall-clock time (epoch seconds) of a log line's timestamp, None if it has none."""
    found = _STAMP.search(line[:64])
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def peak_rss(pid: int) -> int | None:
    """Return a process's peak resident memory in bytes (Linux), None when unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """Return a process's user + system CPU time so far, in seconds (Linux), None when unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def schedstat(pid: int) -> tuple[float, float] | None:
    """Return the seconds a process's main thread has run on a CPU and waited for one (Linux schedstat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        run_ns, wait_ns, _ = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
        return int(run_ns) / 1e9, int(wait_ns) / 1e9
    return None


def seconds(x: float | None) -> str:
    """Format a duration, or n/a."""
    return "n/a" if x is None else f"{x:,.1f} s"


# One user's state: its keys without the user part (``core``, ``d:2026-11-23``, ...) and encoded values.
Bundle = list[tuple[bytes, bytes]]


def keyed(bundle: Bundle, user_key: bytes) -> list[tuple[bytes, bytes]]:
    """Return a state's changelog records under ``user_key``: the keys the engine names them by."""
    p = prefix(user_key)
    return [(p + suffix, value) for suffix, value in bundle]


@dataclass
class States:
    """The distinct states built with the engine, and what building them took."""

    encoded: list[Bundle]
    events: int
    seconds: float
    invalid: int


@dataclass
class Fill:
    """What writing the changelog took and wrote."""

    records: int = 0
    users: int = 0
    payload_bytes: int = 0  # keys and values
    value_bytes: int = 0
    transactions: int = 0
    seconds: float = 0.0
    per_partition: Counter[int] = field(default_factory=Counter)
    sample_partitions: dict[bytes, int] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)


@dataclass
class Restore:
    """What the worker's start showed: phase times (epoch s), the process start, the check of the sample."""

    started: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    finished: bool = False
    remaining: int | None = None  # the last "total remaining" the worker logged
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    data_bytes: int = 0
    peak_rss_bytes: int | None = None
    cpu_seconds: float | None = None  # the worker's user + system CPU time, start to ready
    # The event-loop thread while reading the changelog: seconds on a CPU, waiting for one, and wall seconds.
    loop_reading: tuple[float, float, float] | None = None

    def since_start(self, phase: str) -> float | None:
        at = self.phases.get(phase)
        return None if at is None else at - self.started

    def between(self, first: str, last: str) -> float | None:
        a, b = self.phases.get(first), self.phases.get(last)
        return None if a is None or b is None else b - a


class Run:
    """Hold one run's names and resources; ``cleanup`` releases everything."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client: dict[str, Any] = dict(librdkafka_config(Settings(bootstrap_servers=args.bootstrap)))
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        self.app_id = f"bench-restore-{self.run_id}"
        prefix = f"bench-restore.{self.run_id}."
        self.inputs = {source: prefix + f"in.{source}" for source in INPUTS}
        self.outputs = {name: prefix + f"out.{name}" for name in OUTPUTS}
        self.changelog = f"{self.app_id}-{STATE_TABLE}-changelog"
        self.routed = f"{self.app_id}-routed"
        self.prefixes = [prefix, f"{self.app_id}-"]  # ours, and every internal topic of the app id
        self.probe_group = f"{self.app_id}-probe"  # reads watermarks only: never joins, never commits
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-restore-{self.run_id}-"))
        self.admin = AdminClient(self.client)
        self.proc: subprocess.Popen[bytes] | None = None
        self.profiler: subprocess.Popen[bytes] | None = None

    # -- topics -------------------------------------------------------------------------------------------

    def create_topics(self) -> None:
        """Create the worker's topics as ``stream.runtime.topics.ensure_topics`` and Faust would."""
        n = self.args.partitions
        compacted = {"cleanup.policy": "compact"}
        wanted = [
            NewTopic(name, num_partitions=n, replication_factor=1, config=compacted if s == "member" else {})
            for s, name in self.inputs.items()
        ]
        wanted += [NewTopic(name, num_partitions=n, replication_factor=1) for name in self.outputs.values()]
        wanted.append(NewTopic(self.routed, num_partitions=n, replication_factor=1))
        wanted.append(NewTopic(self.changelog, num_partitions=n, replication_factor=1, config=compacted))
        for future in self.admin.create_topics(wanted, operation_timeout=30).values():
            future.result(60)
        log(f"created {len(wanted)} topics (changelog {self.changelog}, compacted) with {n} partitions")

    # -- states ----------------------------------------------------------------------------------------------

    def build_states(self, distinct: int) -> States:
        """Run the engine over synthetic events of ``distinct`` users; return their states' keys.

        ``stream.feed.generate``: a roster record per user, then ``--events-per-user`` events per user on
        average (Zipf-distributed: a few heavy users, many light ones) over the past two weeks, each in
        one transaction over a ``StateCache`` on an in-memory store, as the worker's pipeline does.
        Credits an event gives another user (likes, thanks, quality marks) are applied to the receiver's
        state here, as the worker would after routing them. The states are the cache's ``take_changes()``.
        """
        book = RuleBook.of(load_rules(), ZoneInfo(TIMEZONE))
        engine = Engine(book, Calendar(TIMEZONE))
        cache = StateCache(MemoryStore(), decode_value, encode_value)
        partitions = self.args.partitions
        now_ms = int(time.time() * 1000)
        span_ms = SPAN_DAYS * DAY_MS
        n = distinct * self.args.events_per_user
        log(f"building {distinct:,} distinct states with the engine over {n:,} synthetic events")
        began = time.perf_counter()
        dumps = orjson.dumps
        invalid = applied = 0

        def apply(event: Any) -> Any:
            user_key = event.user_id.encode()
            tx = cache.begin(partition_for(user_key, partitions))
            try:
                outcome = engine.apply(event, tx, user_key)
            except BaseException:
                tx.rollback()
                raise
            tx.commit()
            return outcome

        for source, key, value in generate(
            n, users=distinct, seed=self.args.seed, start_ms=now_ms - span_ms - 600_000, span_ms=span_ms
        ):
            try:
                event = decode(
                    source, dumps(value), key.encode(), now_ms=now_ms, max_future_ms=book.max_future_ms
                )
            except InvalidEvent:
                invalid += 1
                continue
            outcome = apply(event)
            applied += 1
            for credit in outcome.credits:
                apply(credit)
                applied += 1
        bundles: dict[bytes, Bundle] = {}
        for key, (_, value) in sorted(cache.take_changes().items()):
            if value is not None:  # a key deleted again (a pruned period) is no state
                user, _, suffix = key.partition(SEPARATOR)
                bundles.setdefault(user, []).append((suffix, value))
        encoded = list(bundles.values())
        elapsed = time.perf_counter() - began
        log(
            f"built {len(encoded):,} states ({sum(map(len, encoded)):,} keys) from {applied:,} events and "
            f"credits in {elapsed:.1f} s" + (f" ({invalid:,} invalid events skipped)" if invalid else "")
        )
        return States(encoded, applied, elapsed, invalid)

    # -- changelog ---------------------------------------------------------------------------------------------

    def fill(self, states: list[Bundle], sample: dict[bytes, Bundle]) -> Fill:
        """Write each user's state keys to the changelog, about ``--transaction`` records per transaction.

        User i gets ``states[i % len(states)]``, its keys under user i's prefix. Every record goes to its
        user's partition (murmur2 of the user id, as the worker's flush writes its changelog). The state
        written for each user of ``sample`` is put in it, and the partition its delivery reports name is
        recorded, to be checked against ``partition_for``.
        """
        users, per_txn = self.args.users, self.args.transaction
        result = Fill()
        failures: list[KafkaError] = []
        per_partition = result.per_partition

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(err)
            else:
                per_partition[msg.partition() or 0] += 1

        def sampled(err: KafkaError | None, msg: Message) -> None:
            delivered(err, msg)
            key = msg.key()
            if err is None and key is not None:
                result.sample_partitions[key.partition(SEPARATOR)[0]] = msg.partition() or 0

        producer = Producer(
            {
                **self.client,
                "transactional.id": f"{self.app_id}-fill",
                "partitioner": "murmur2_random",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 2_097_152,
                "on_delivery": delivered,
            }
        )
        producer.init_transactions(30)
        topic = self.changelog
        produce = producer.produce
        distinct = len(states)
        partitions = self.args.partitions
        expected = sum(len(states[i % distinct]) for i in range(users))
        log(f"filling {topic}: {users:,} users, {expected:,} records, ~{per_txn:,} per transaction")
        began = time.perf_counter()
        next_log = began + 10
        keys = values = written = in_txn = 0
        producer.begin_transaction()
        for i in range(users):
            user_key = user_id(i).encode()
            bundle = states[i % distinct]
            partition = partition_for(user_key, partitions)
            if user_key in sample:
                sample[user_key] = bundle
                on_delivery: Callable[[KafkaError | None, Message], None] = sampled
            else:
                on_delivery = delivered
            for key, value in keyed(bundle, user_key):
                keys += len(key)
                values += len(value)
                while True:
                    try:
                        produce(topic, value, key, partition=partition, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
            written += len(bundle)
            in_txn += len(bundle)
            if in_txn >= per_txn or i == users - 1:
                producer.commit_transaction(120)  # flushes: every record of it is acknowledged
                result.transactions += 1
                in_txn = 0
                if failures:
                    raise RuntimeError(f"{len(failures)} changelog records failed, first: {failures[0]}")
                if i < users - 1:
                    producer.begin_transaction()
            if time.perf_counter() > next_log:
                log(
                    f"  {written:,} / {expected:,} records ({written / (time.perf_counter() - began):,.0f}/s)"
                )
                next_log += 10
        result.seconds = time.perf_counter() - began
        result.records = sum(per_partition.values())
        result.users = users
        result.payload_bytes = keys + values
        result.value_bytes = values
        if result.records != expected:
            raise RuntimeError(f"{result.records:,} of {expected:,} changelog records were acknowledged")
        result.end_offsets = self.end_offsets()
        log(
            f"filled in {result.seconds:.1f} s ({result.records / result.seconds:,.0f} records/s, "
            f"{result.transactions:,} transactions)"
        )
        return result

    def end_offsets(self) -> dict[int, int]:
        """Return the changelog's end offset per partition (its records plus the transaction markers)."""
        consumer = Consumer({**self.client, "group.id": self.probe_group, "enable.auto.commit": False})
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(self.changelog, p), timeout=15)[1]
                for p in range(self.args.partitions)
            }
        finally:
            consumer.close()

    # -- worker -----------------------------------------------------------------------------------------------

    def worker_env(self, port: int) -> dict[str, str]:
        """Return the worker's environment: this run's names, a fresh data dir, exactly_once."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.args.bootstrap,
                "STREAM_APP_ID": self.app_id,
                "STREAM_DATA_DIR": str(self.tmp / "data"),
                "STREAM_WEB_PORT": str(port),
                "STREAM_TOPIC_PARTITIONS": str(self.args.partitions),
                "STREAM_PROCESSING_GUARANTEE": "exactly_once",
                "STREAM_LOG_LEVEL": "info",
                "PYTHONPATH": pythonpath(),
            }
        )
        env.update({var: self.inputs[source] for source, var in INPUTS.items()})
        env.update({var: self.outputs[name] for name, var in OUTPUTS.items()})
        return env

    def restore(self, sample: dict[bytes, Bundle]) -> Restore:
        """Start the worker on an empty data dir; follow its log until it is ready or the time is up."""
        port = free_port()
        log_path = self.tmp / "worker.log"
        result = Restore()
        markers = {marker: name for name, marker, _ in PHASES}
        with log_path.open("wb") as out:
            result.started = time.time()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream", "worker"],
                cwd=ROOT,
                env=self.worker_env(port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        log(f"started the worker (pid {self.proc.pid}, port {port}, data dir {self.tmp / 'data'})")
        deadline = time.monotonic() + self.args.timeout
        next_log = time.monotonic() + 15
        position = 0
        pending = b""
        reading_from: tuple[tuple[float, float] | None, float] = (None, 0.0)
        with log_path.open("rb") as reader:
            while not result.finished:
                reader.seek(position)
                chunk = reader.read()
                position += len(chunk)
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for raw in lines:
                    line = raw.decode(errors="replace")
                    remaining = _REMAINING.search(line)
                    if remaining:
                        result.remaining = int(remaining.group(1))
                    for marker, name in markers.items():
                        if name not in result.phases and marker in line:
                            result.phases[name] = stamp(line) or time.time()
                            if name == "reading":
                                reading_from = schedstat(self.proc.pid), time.monotonic()
                                if self.args.profile:
                                    self.start_profiler(self.proc.pid)
                            if name == "read":
                                until, now = schedstat(self.proc.pid), time.monotonic()
                                if until is not None and reading_from[0] is not None:
                                    (run0, wait0), (run1, wait1) = reading_from[0], until
                                    result.loop_reading = (run1 - run0, wait1 - wait0, now - reading_from[1])
                            if name == "ready":
                                result.finished = True
                if result.finished:
                    break
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"the worker exited with {self.proc.returncode}:\n{tail(log_path, 30)}"
                    )
                now = time.monotonic()
                if now > deadline:
                    log(f"the worker is not ready after {self.args.timeout:.0f} s:\n{tail(log_path, 12)}")
                    self.dump_stacks(self.proc.pid)
                    return result
                if now > next_log:
                    left = "" if result.remaining is None else f", {result.remaining:,} records left"
                    log(f"  restoring: {time.time() - result.started:,.0f} s since start{left}")
                    next_log += 15
                time.sleep(POLL_S)
        for name, _, what in PHASES:
            since = result.since_start(name)
            if since is not None:
                log(f"  +{since:7.2f} s  {what}")
        result.data_bytes = sum(f.stat().st_size for f in (self.tmp / "data").rglob("*") if f.is_file())
        result.peak_rss_bytes = peak_rss(self.proc.pid)
        result.cpu_seconds = cpu_seconds(self.proc.pid)
        self.check_sample(port, sample, result)
        return result

    def check_sample(self, port: int, sample: dict[bytes, Bundle], result: Restore) -> None:
        """GET /users/<id> for every sampled user and compare with the view of the state keys produced."""
        rules = RuleBook.of(load_rules(), ZoneInfo(TIMEZONE)).latest
        calendar = Calendar(TIMEZONE)
        for key, bundle in sample.items():
            uid = key.decode()
            produced = {k: decode_value(k, v) for k, v in keyed(bundle, key)}
            view = user_view(produced.get, key, rules, calendar)
            expected = orjson.loads(orjson.dumps({"user_id": uid, **(view or {})}))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/{uid}", timeout=10) as resp:
                    served = orjson.loads(resp.read())
            except (OSError, ValueError) as exc:
                result.mismatches.append(f"{uid}: {exc}")
                continue
            result.checked += 1
            if served != expected:
                result.mismatches.append(f"{uid}: served {served} but the changelog holds {expected}")
        unknown = user_id(self.args.users + 1)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/users/{unknown}", timeout=10).close()
            result.mismatches.append(f"{unknown} (never produced) was served")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                result.mismatches.append(f"{unknown}: HTTP {exc.code}, expected 404")
        log(f"sample check: {result.checked} users served, {len(result.mismatches)} problems")
        for problem in result.mismatches[:5]:
            log(f"  {problem[:300]}")

    # -- profiling --------------------------------------------------------------------------------------------

    def py_spy(self) -> str | None:
        """Return the py-spy executable: next to this interpreter, else on PATH."""
        local = Path(sys.executable).parent / "py-spy"
        return str(local) if local.exists() else shutil.which("py-spy")

    def start_profiler(self, pid: int) -> None:
        """Sample the worker with ``py-spy record --gil`` for ``--profile`` seconds of its changelog reading.

        ``--gil``: only the thread holding the GIL is sampled, so the samples say where the (single) Python
        CPU goes, and their count against the wall clock says how busy the GIL is.
        """
        spy = self.py_spy()
        if spy is None:
            log("--profile: py-spy not found")
            return
        out = self.tmp / "profile.txt"
        argv = [spy, "record", "--pid", str(pid), "--duration", str(self.args.profile)]
        argv += ["--rate", str(PROFILE_RATE), "--gil", "--format", "raw", "--output", str(out)]
        log(f"profiling the worker for {self.args.profile} s (py-spy --gil, {PROFILE_RATE} samples/s)")
        with (self.tmp / "py-spy.log").open("wb") as err:
            self.profiler = subprocess.Popen(argv, stdout=err, stderr=subprocess.STDOUT)

    def report_profile(self) -> None:
        """Print where the sampled time went: by part of the restore path, by leaf function, on the stack."""
        if self.profiler is None:
            return
        try:
            self.profiler.wait(self.args.profile + 30)
        except subprocess.TimeoutExpired:
            self.profiler.kill()
        out = self.tmp / "profile.txt"
        if not out.exists():
            log(f"no profile:\n{tail(self.tmp / 'py-spy.log', 30)}")
            return
        if self.args.profile_out is not None:
            shutil.copyfile(out, self.args.profile_out)
        parts: Counter[str] = Counter()
        leaf: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        for line in out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_frame(frame) for frame in stack.split(";") if "(" in frame]
            if not frames:
                continue
            total += n
            leaf[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
            names = " ".join(frames)
            parts[next((part for part, marks in PARTS if any(m in names for m in marks)), "other")] += n
        if not total:
            log("the profile holds no samples")
            return
        busy = total / (self.args.profile * PROFILE_RATE)
        lines = [f"profile of the changelog reading: {total:,} samples, GIL held {busy:.0%} of the time"]
        views = (("by part of the path", parts), ("leaf functions", leaf), ("on the stack", inclusive))
        for title, counts in views:
            lines.append(f"  {title}:")
            lines += [
                f"    {n / total:6.1%}  {what}" for what, n in counts.most_common(self.args.profile_top)
            ]
        print("\n".join(lines), file=sys.stderr, flush=True)

    def dump_stacks(self, pid: int) -> None:
        """Print the worker's Python stacks (``py-spy dump``): where a slow restore is right now."""
        spy = self.py_spy()
        if spy is None:
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, timeout=60)
            log(f"py-spy dump of the worker:\n{done.stdout.decode(errors='replace')[-6000:]}")

    # -- cleanup ----------------------------------------------------------------------------------------------

    def stop_worker(self) -> None:
        """Stop the worker: SIGTERM, SIGKILL after 30 s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        log(f"stopping the worker (pid {proc.pid})")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def cleanup(self) -> None:
        """Stop the subprocesses, delete the run's topics and consumer group, remove the temp dir."""
        with contextlib.suppress(Exception):
            self.stop_worker()
        worker_log = self.tmp / "worker.log"
        if self.args.log is not None and worker_log.exists():
            shutil.copyfile(worker_log, self.args.log)
            log(f"the worker's log is in {self.args.log}")
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.kill()
            self.profiler.wait(10)
        try:
            topics = self.admin.list_topics(timeout=15).topics
            doomed = [t for t in topics if any(t.startswith(p) for p in self.prefixes)]
            if doomed:
                for future in self.admin.delete_topics(doomed, operation_timeout=60).values():
                    with contextlib.suppress(Exception):
                        future.result(90)
                log(f"deleted {len(doomed)} topics")
            for future in self.admin.delete_consumer_groups(
                [self.app_id, self.probe_group], request_timeout=15
            ).values():
                with contextlib.suppress(Exception):  # a group that never formed cannot be deleted
                    future.result(30)
        except KafkaException as exc:  # best effort: report and go on
            log(f"cleanup of Kafka resources failed: {exc!r}")
        shutil.rmtree(self.tmp, ignore_errors=True)


def _frame(frame: str) -> str:
    """Shorten a py-spy frame ``function (path/to/file.py:123)`` to ``function (package/file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    for anchor in ("site-packages", "stream", "python3.11"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            short = "/".join(parts[index + 1 :] if anchor != "stream" else parts[index:])
            return f"{name.strip()} ({short})"
    return f"{name.strip()} ({'/'.join(parts[-2:])})"


def table(args: argparse.Namespace, states: States, fill: Fill, restore: Restore) -> str:
    """Format the run's figures as one table."""
    users = args.users
    distinct = len(states.encoded)
    avg_state = fill.value_bytes / max(1, fill.records)
    rows: list[tuple[str, str]] = [
        ("users", f"{users:,}"),
        ("partitions", f"{args.partitions}"),
        (
            "distinct states (engine)",
            f"{distinct:,} from {states.events:,} events and credits in {states.seconds:.1f} s"
            + (f"; each written under ~{users / distinct:,.1f} users' keys" if distinct < users else ""),
        ),
        ("changelog records", f"{fill.records:,} state keys ({fill.records / max(1, users):,.1f} per user)"),
        ("changelog bytes", f"{fill.payload_bytes:,} (keys + values, uncompressed)"),
        ("avg state key value bytes", f"{avg_state:,.0f}"),
        ("avg state bytes per user", f"{fill.payload_bytes / max(1, users):,.0f} (keys + values)"),
        (
            "records per partition",
            f"{min(fill.per_partition.values()):,} to {max(fill.per_partition.values()):,}",
        ),
        (
            "changelog offsets",
            f"{sum(fill.end_offsets.values()):,} ({fill.records:,} records + transaction markers)",
        ),
        (
            "time to fill",
            f"{fill.seconds:,.1f} s ({fill.records / fill.seconds:,.0f} records/s, "
            f"{fill.transactions:,} transactions of {args.transaction:,})",
        ),
    ]
    ready = restore.since_start("ready") if restore.finished else None
    reading = restore.between("reading", "read")
    rows += [
        (
            "restore (start → ready)",
            seconds(ready) if ready is not None else f"not ready in {args.timeout:.0f} s",
        ),
        ("  process start → partitions assigned", seconds(restore.since_start("assigned"))),
        ("  recovery (assigned → Worker ready)", seconds(restore.between("assigned", "worker_ready"))),
        ("    finding the committed ends", seconds(restore.between("assigned", "ends"))),
        ("    reading the changelog", seconds(reading)),
        ("  Worker ready → web server up", seconds(restore.between("worker_ready", "ready"))),
        (
            "records/s restored",
            f"{fill.records / ready:,.0f} (start → ready)" if ready else "n/a",
        ),
    ]
    if reading:
        rows.append(("", f"{fill.records / reading:,.0f} (reading the changelog only)"))
    if not restore.finished and restore.remaining is not None:
        rows.append(("left to read (last logged)", f"{restore.remaining:,} records"))
    if restore.data_bytes:
        rows.append(("RocksDB data dir", f"{restore.data_bytes:,} bytes"))
    if restore.cpu_seconds is not None and ready:
        rows.append(
            (
                "worker CPU, start → ready",
                f"{restore.cpu_seconds:,.1f} s ({restore.cpu_seconds / ready:.0%} of one core; all threads)",
            )
        )
    if restore.loop_reading is not None and restore.loop_reading[2] > 0:
        run, wait, wall = restore.loop_reading
        rows.append(
            (
                "event-loop thread, reading",
                f"{run / wall:.0%} on a CPU, {wait / wall:.0%} waiting for a CPU (other load), "
                f"{max(0.0, 1 - (run + wait) / wall):.0%} asleep (I/O, the GIL)",
            )
        )
    if restore.peak_rss_bytes:
        rows.append(("worker peak RSS", f"{restore.peak_rss_bytes / 2**20:,.0f} MiB"))
    if restore.finished:
        verdict = "ok" if not restore.mismatches else f"{len(restore.mismatches)} PROBLEMS"
        rows.append(("sample served by GET /users/<id>", f"{restore.checked} users: {verdict}"))
    load = os.getloadavg()
    rows.append(
        (
            "machine",
            f"{os.cpu_count()} cores, shared (load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}): noisy",
        )
    )
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label:<{width}}{value}" for label, value in rows)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--users",
        type=int,
        default=1_000_000,
        help="users whose states the changelog holds (default 1000000)",
    )
    parser.add_argument("--partitions", type=int, default=8, help="partitions per topic (default 8)")
    parser.add_argument(
        "--distinct",
        type=int,
        default=100_000,
        help="states built with the engine, reused round-robin when fewer than --users (default 100000)",
    )
    parser.add_argument(
        "--events-per-user",
        type=int,
        default=8,
        help="synthetic events per distinct state, on average (default 8)",
    )
    parser.add_argument(
        "--transaction", type=int, default=2000, help="changelog records per Kafka transaction (default 2000)"
    )
    parser.add_argument(
        "--sample", type=int, default=20, help="users checked through GET /users/<id> (default 20)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        help="give up on the restore after this many seconds (default 1200)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="sample the worker with py-spy for this long once it reads the changelog (default: no)",
    )
    parser.add_argument("--profile-top", type=int, default=15, help="lines per profile view (default 15)")
    parser.add_argument(
        "--profile-out", type=Path, default=None, help="copy py-spy's raw profile to this file"
    )
    parser.add_argument("--log", type=Path, default=None, help="copy the worker's log to this file")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic events and of the sample")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka brokers (default $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    args = parser.parse_args(argv)
    if args.users < 1 or args.partitions < 1 or args.distinct < 2 or args.transaction < 1:
        parser.error("need --users >= 1, --partitions >= 1, --distinct >= 2, --transaction >= 1")
    run = Run(args)
    log(f"run {run.run_id}: {args.users:,} users, {args.partitions} partitions, broker {args.bootstrap}")
    rng = random.Random(args.seed)
    sample: dict[bytes, Bundle] = {
        user_id(i).encode(): [] for i in rng.sample(range(args.users), min(args.sample, args.users))
    }
    try:
        run.create_topics()
        states = run.build_states(max(2, min(args.users, args.distinct)))
        fill = run.fill(states.encoded, sample)
        misplaced = [
            key.decode()
            for key, p in fill.sample_partitions.items()
            if p != partition_for(key, args.partitions)
        ]
        if misplaced:
            raise RuntimeError(f"records of {misplaced} are not on their murmur2 partition")
        restore = run.restore(sample)
        run.report_profile()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        run.cleanup()
    sys.stderr.flush()
    print(table(args, states, fill, restore), flush=True)
    return 0 if restore.finished and not restore.mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
