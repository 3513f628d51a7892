"""Run the chaos suite: workers under faults and malformed input, against exact expected awards.

Run as ``.venv/bin/python chaos/run.py`` (``make chaos``; ``--help`` lists the options). Each fault runs
on its own fresh topics and app id against real ``stream worker`` processes, feeds valid traffic
(``chaos/traffic.py``: ``stream/feed.py``'s synthetic events, exact re-deliveries, edge cases) and
compares what the workers published with what an independent model of SPEC's rules (``chaos/model.py``)
expects: every user's balance, the points and award count of every (user, rule), every group and team
challenge award by its id, the task, achievement and level badges, no award id with two contents and,
under ``exactly_once``, no award id twice when read with ``isolation.level=read_committed``. Workers run
with ``chaos/rules.yaml`` (``STREAM_RULES_FILE``): the default rules without boards, whose titles depend
on when weeks close (see chaos/model.py).

One line per fault goes to stdout, ``fault <name>: PASS|FAIL <details> [<seconds> s]``; progress goes to
stderr. The exit status is 1 when any fault failed. Every fault has its own time limit and fails on it.
Topics and consumer groups are deleted at the end; the workers' logs are kept (the path is printed)
when a fault failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from chaos.check import Verdict, committed_lag, compare, read_topic  # noqa: E402
from chaos.malformed import Bad, Maker  # noqa: E402
from chaos.model import CHAOS_RULES, Expected, expect  # noqa: E402
from chaos.traffic import Record, traffic  # noqa: E402
from tests.e2e.harness import SOURCES, Topics, WorkerProcess, create_topics, delete_topics  # noqa: E402

KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
PARTITIONS = 4
FLUSH_PHASES = ("sent", "durable", "applied")
MALFORMED = 10_000
DEADLETTER_LIMIT = 100_000  # bytes: a dead letter must stay bounded whatever the input's size
POLL_S = 2.0
QUIET = logging.getLogger("chaos.librdkafka")  # Kafka clients log here, not to the terminal
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False
_T0 = time.monotonic()
HANG_S = 15.0  # a worker that logged a crash and still runs after this long is hung
CRASH_LINE = re.compile(r"Crashed reason=(.*)")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*:")


def log(message: str) -> None:
    """Print one progress line to stderr."""
    print(f"[chaos {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


LEFT_GROUPS: list[str] = []  # consumer groups to delete at the end, once killed members have timed out


def delete_groups(bootstrap: str, groups: list[str], wait: float) -> None:
    """Delete the runs' consumer groups; retry once after ``wait`` s those a killed member still holds."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": QUIET})  # type: ignore[dict-item]
    errors: dict[str, str] = {}
    for attempt in range(2):
        if not groups:
            return
        errors = {}
        for group, future in admin.delete_consumer_groups(groups, request_timeout=10).items():
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - NON_EMPTY_GROUP while a killed member's session lasts
                if "GROUP_ID_NOT_FOUND" not in str(exc):
                    errors[group] = str(exc)
        groups = list(errors)
        if groups and attempt == 0:
            log(
                f"waiting {wait:.0f} s to delete {len(groups)} consumer groups that killed members still hold"
            )
            time.sleep(wait)
    log(f"consumer groups left on the broker: {errors}")


class FaultTimeout(Exception):
    """Raised when a fault runs past its time limit; the message says what it was waiting for."""


class Failed(Exception):
    """Raised when a fault fails before its outputs can be checked; the message says why."""


@dataclass(frozen=True)
class Options:
    """The command line."""

    bootstrap: str
    guarantee: str
    events: int
    kills: int
    session_timeout: float
    seed: int
    keep: bool


def last_error(worker: WorkerProcess) -> str:
    """Return the first exception a worker's log names (``module.Error: message``), else its last line."""
    lines = worker.log_path.read_text(errors="replace").splitlines() if worker.log_path.exists() else []
    for line in lines:
        if EXCEPTION_LINE.match(line):
            return line.strip()[:300]
    for line in reversed(lines):
        if "ERROR" in line or "CRITICAL" in line:
            return line.strip()[:300]
    return (lines[-1].strip()[:300]) if lines else "(empty log)"


def crash_reason(worker: WorkerProcess) -> str | None:
    """Return the reason of the first crash a worker's log reports, or None."""
    try:
        text = worker.log_path.read_text(errors="replace")
    except OSError:
        return None
    match = CRASH_LINE.search(text)
    return match.group(1).strip()[:300] if match else None


class Feeder(threading.Thread):
    """Produce records in the background, paced to a rate, keyed and partitioned like ``stream.feed``.

    Its own producer rather than ``feed.produce``: librdkafka's complaints while a broker is down go to
    a quiet logger instead of the terminal.
    """

    def __init__(self, bootstrap: str, topics: Topics, records: list[Record], rate: float | None) -> None:
        super().__init__(daemon=True, name="feeder")
        self.bootstrap = bootstrap
        self.topics = {s: topics.source(s) for s in SOURCES}
        self.records = records
        self.interval = 1.0 / rate if rate else 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # noqa: BLE001 - handed to the fault, which fails with it
            self.error = exc

    def _produce(self) -> None:
        failures: list[str] = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "partitioner": "murmur2_random",  # as stream.feed: the partition a Faust worker expects
                "linger.ms": 5,
                "delivery.report.only.error": True,
                "on_delivery": on_delivery,
                "logger": QUIET,
            }
        )
        start = time.perf_counter()
        for n, (source, key, value) in enumerate(self.records):
            if self.interval:
                ahead = start + n * self.interval - time.perf_counter()
                if ahead > 0.001:
                    time.sleep(ahead)
            payload = None if value is None else orjson.dumps(value)
            while True:
                try:
                    producer.produce(self.topics[source], payload, key.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            if n % 500 == 0:
                producer.poll(0)
        if producer.flush(120) or failures:
            raise RuntimeError(f"input not delivered: {failures[:3] or 'still queued after 120 s'}")


class Fault:
    """One fault's run: its own topics, app id, workers, randomness and deadline."""

    def __init__(self, name: str, opts: Options, timeout: float, workdir: Path) -> None:
        tag = secrets.token_hex(3)
        self.name = name
        self.opts = opts
        self.bootstrap = opts.bootstrap
        self.partitions = PARTITIONS
        self.topics = Topics(prefix=f"chaos.{name}.{tag}")
        self.app_id = f"chaos-{name}-{tag}"
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.seed = opts.seed + zlib.crc32(name.encode()) % 1000  # the same with or without --only
        self.rng = random.Random(self.seed)
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.workers: dict[str, WorkerProcess] = {}
        self.all_workers: list[WorkerProcess] = []
        self.feeder: Feeder | None = None
        self.cleanups: list[Callable[[], None]] = []
        self.crash_seen: dict[int, float] = {}  # id of a worker -> when its crash was first seen

    # --- time ---------------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_time(self, doing: str) -> None:
        """Raise FaultTimeout when the fault is past its time limit."""
        if self.remaining() <= 0:
            raise FaultTimeout(doing)

    def sleep(self, seconds: float, doing: str) -> None:
        """Sleep, but not past the deadline."""
        time.sleep(max(0.0, min(seconds, self.remaining())))
        self.check_time(doing)

    # --- traffic ------------------------------------------------------------------------------

    def setup_topics(self) -> None:
        create_topics(self.bootstrap, self.topics, self.partitions)
        if not self.opts.keep:
            self.cleanups.append(self._delete_topics)

    def feed(self, records: list[Record], seconds: float | None = None) -> Feeder:
        """Start producing ``records`` in the background, spread over ``seconds`` (None: at once)."""
        rate = len(records) / seconds if seconds else None
        self.feeder = Feeder(self.bootstrap, self.topics, records, rate)
        self.feeder.start()
        return self.feeder

    def feeding(self) -> bool:
        """Tell whether the background producer still runs; raise Failed if it failed."""
        if self.feeder is None:
            return False
        if self.feeder.error is not None:
            raise Failed(f"producing the input failed: {self.feeder.error}")
        return self.feeder.is_alive()

    # --- workers ------------------------------------------------------------------------------

    def worker_env(self, name: str, **extra: str) -> dict[str, str]:
        env = {
            "STREAM_PROCESSING_GUARANTEE": self.opts.guarantee,
            "STREAM_INSTANCE_ID": name,
            "STREAM_RULES_FILE": str(CHAOS_RULES),  # what the model expects: the defaults without boards
            **extra,
        }
        if self.opts.session_timeout > 0:
            env["BROKER_SESSION_TIMEOUT"] = str(self.opts.session_timeout)
            env["BROKER_HEARTBEAT_INTERVAL"] = str(max(0.5, min(3.0, self.opts.session_timeout / 4)))
        return env

    def start_worker(self, name: str, **extra: str) -> WorkerProcess:
        """Start the logical worker ``name`` (its own data dir and instance id) and wait until it is ready."""
        self.check_time(f"starting worker {name}")
        (self.workdir / name).mkdir(exist_ok=True)
        worker = WorkerProcess(
            self.bootstrap,
            self.topics,
            self.workdir / name,
            self.app_id,
            self.partitions,
            **self.worker_env(name, **extra),
        )
        self.workers[name] = worker
        self.all_workers.append(worker)
        try:
            worker.start(timeout=max(1.0, min(120.0, self.remaining())))
        except TimeoutError:
            self.check_time(f"starting worker {name}")
            raise Failed(f"worker {name} not ready in 120 s: {last_error(worker)}") from None
        except RuntimeError:
            raise Failed(f"worker {name} exited while starting: {last_error(worker)}") from None
        return worker

    def signal(self, name: str, sig: int) -> int:
        """Send ``sig`` to worker ``name``, wait for it to exit and return its exit code."""
        return self.workers[name].stop(sig, timeout=60)

    def hung(self) -> list[tuple[str, str]]:
        """Return the live workers that logged a crash over HANG_S seconds ago, with the crash reason."""
        out = []
        for name, worker in self.workers.items():
            if worker.proc is None or worker.proc.poll() is not None:
                continue
            reason = crash_reason(worker)
            if reason is None:
                continue
            first = self.crash_seen.setdefault(id(worker), time.monotonic())
            if time.monotonic() - first >= HANG_S:
                out.append((name, reason))
        return out

    def exited(self) -> list[tuple[str, int]]:
        """Return the workers that exited although nobody stopped them, with their exit codes."""
        out = []
        for name, worker in self.workers.items():
            assert worker.proc is not None
            code = worker.proc.poll()
            if code is not None:
                out.append((name, code))
        return out

    # --- outputs ------------------------------------------------------------------------------

    def compare(self, expected: Expected) -> Verdict:
        return compare(
            self.bootstrap,
            self.topics.output("points"),
            self.topics.output("badges"),
            expected,
            exactly_once=self.opts.guarantee == "exactly_once",
        )

    def lag(self) -> int:
        return committed_lag(self.bootstrap, self.app_id, [self.topics.source(s) for s in SOURCES])

    def settle(
        self,
        check: Callable[[], Verdict],
        supervise: Callable[[], None] | None = None,
        quiet: float = 12.0,
    ) -> Verdict:
        """Poll ``check`` until it passes and stays so, or the outputs stop changing; return the last verdict.

        Done when nothing is being produced any more and either the group has committed every input
        record and the verdict passed on two reads in a row, or the output stopped growing for ``quiet``
        seconds (offsets the group never commits are noted, not failed). At the deadline the verdict
        fails with the input lag it was waiting on.
        """
        last, since = -1, time.monotonic()
        while True:
            if supervise is not None:
                supervise()
            verdict = check()
            lag = self.lag()
            feeding = self.feeding()
            now = time.monotonic()
            if verdict.records != last:
                last, since = verdict.records, now
            idle = now - since
            if lag == 0 and not feeding and ((verdict.ok and idle > 0) or idle >= quiet):
                return verdict
            if lag > 0 and not feeding and verdict.ok and idle >= quiet:
                verdict.notes.append(f"{lag} input records processed but their offsets not committed")
                return verdict
            if self.remaining() <= 0:
                verdict.problems.append(
                    f"timed out after {self.timeout:.0f} s waiting for the outputs (input lag {lag})"
                )
                return verdict
            time.sleep(min(POLL_S, max(0.0, self.remaining())))

    # --- clean-up -----------------------------------------------------------------------------

    def _delete_topics(self) -> None:
        delete_topics(self.bootstrap, self.topics, app_ids=[self.app_id])
        if self.bootstrap == self.opts.bootstrap:  # a private broker goes with its data
            LEFT_GROUPS.append(self.app_id)

    def cleanup(self) -> None:
        """Kill this fault's workers, then undo what it set up (topics, a broker), newest first."""
        for worker in self.all_workers:
            if worker.proc is not None and worker.proc.poll() is None:
                worker.stop(signal.SIGKILL, timeout=10)
        if self.feeder is not None:
            self.feeder.join(5)
        for step in reversed(self.cleanups):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - clean-up goes on with the next step
                log(f"{self.name}: clean-up step failed: {exc}")


# --- the faults ---------------------------------------------------------------------------------


def fault_baseline(f: Fault) -> Verdict:
    """No fault: one worker, clean traffic. Checks the model against the engine before anything else."""
    f.setup_topics()
    records = traffic(f.opts.events, f.seed)
    expected = expect(records, partitions=f.partitions)
    f.feed(records)
    f.start_worker("w1")
    verdict = f.settle(lambda: f.compare(expected), _no_exits(f))
    verdict.notes.append(f"{len(records)} input records")
    return verdict


def fault_sigkill_random(f: Fault) -> Verdict:
    """SIGKILL one worker at random moments while traffic flows, restarting it each time."""
    f.setup_topics()
    records = traffic(f.opts.events, f.seed)
    expected = expect(records, partitions=f.partitions)
    kills = f.opts.kills
    f.feed(records, seconds=max(30.0, 10.0 * kills))
    f.start_worker("w1")
    for k in range(1, kills + 1):
        f.sleep(f.rng.uniform(0.3, 6.0), f"running before kill {k} of {kills}")
        worker = f.workers["w1"]
        processed = _processed(worker)
        code = f.signal("w1", signal.SIGKILL)
        if code != -signal.SIGKILL:
            raise Failed(f"worker exited with {code} on its own before kill {k}: {last_error(worker)}")
        log(f"{f.name}: kill {k}/{kills} after {processed} records of this run; restarting")
        f.start_worker("w1")
    verdict = f.settle(lambda: f.compare(expected), _no_exits(f))
    verdict.notes.append(f"{kills} SIGKILLs")
    return verdict


def fault_sigkill_in_flush(f: Fault, phase: str) -> Verdict:
    """Make the worker SIGKILL itself in one flush phase of its N-th batch, then restart it without that."""
    f.setup_topics()
    records = traffic(f.opts.events // 2, f.seed)
    expected = expect(records, partitions=f.partitions)
    half = len(records) // 2
    f.feed(records[:half])
    assert f.feeder is not None
    f.feeder.join()
    nth = f.rng.randint(2, 6)
    try:
        worker = f.start_worker("w1", STREAM_FAULT_KILL=f"{phase}:{nth}")
    except Failed:
        worker = f.workers["w1"]
        if worker.proc is None or worker.proc.poll() != -signal.SIGKILL:
            raise  # it did not kill itself: it failed
        # It reached batch N before it looked ready: the death below is the expected one.
    f.feed(records[half:], seconds=15.0)
    assert worker.proc is not None
    # Wait for the death; "did not die" once the input is done and the worker has been idle a while.
    last, since = -1.0, time.monotonic()
    while worker.proc.poll() is None:
        f.check_time(f"waiting for the worker to kill itself in phase {phase} of batch {nth}")
        processed = _processed(worker)
        if processed != last:
            last, since = processed, time.monotonic()
        elif not f.feeding() and time.monotonic() - since > 5:
            break
        time.sleep(0.5)
    code = worker.proc.poll()
    died = ""
    if code is None:
        died = (
            f"the worker did not die in flush phase {phase} of batch {nth} (STREAM_FAULT_KILL unsupported?)"
        )
    elif code != -signal.SIGKILL:
        raise Failed(f"the worker exited with {code}, not SIGKILL: {last_error(worker)}")
    else:
        log(
            f"{f.name}: the worker killed itself in phase {phase} of batch {nth}; restarting without the fault"
        )
        f.start_worker("w1")
    verdict = f.settle(lambda: f.compare(expected), _no_exits(f))
    if died:
        verdict.problems.insert(0, died)
    else:
        verdict.notes.append(f"killed in phase {phase} of batch {nth}")
    return verdict


def fault_broker_kill(f: Fault) -> Verdict:
    """SIGKILL a private broker mid-stream, restart it on its data, and check the awards stay exact."""
    broker = Broker(_free_port_pair())
    f.cleanups.append(broker.stop)
    broker.start(timeout=min(150.0, f.remaining()))
    f.bootstrap = broker.bootstrap
    f.setup_topics()
    records = traffic(f.opts.events, f.seed)
    expected = expect(records, partitions=f.partitions)
    f.feed(records, seconds=40.0)
    f.start_worker("w1")
    f.sleep(f.rng.uniform(5.0, 20.0), "running before the broker kill")
    broker.kill()
    down = f.rng.uniform(1.0, 5.0)
    log(f"{f.name}: broker SIGKILLed; restarting it on its data in {down:.1f} s")
    f.sleep(down, "waiting to restart the broker")
    started = time.monotonic()
    broker.start(timeout=min(150.0, f.remaining()))
    outage = down + time.monotonic() - started
    log(f"{f.name}: broker back after {outage:.1f} s")
    restarts: list[str] = []

    def supervise() -> None:
        # A worker may stop on a failed send (SPEC: it is restarted and replays): restart it, as a pod would.
        for name, code in f.exited():
            restarts.append(f"{name} exited {code}: {last_error(f.workers[name])}")
            log(f"{f.name}: {restarts[-1]}; restarting it")
            f.start_worker(name)
        for name, reason in f.hung():  # as a liveness probe would
            restarts.append(f"{name} hung after a crash ({reason})")
            log(f"{f.name}: {restarts[-1]}; killing and restarting it")
            f.signal(name, signal.SIGKILL)
            f.start_worker(name)

    verdict = f.settle(lambda: f.compare(expected), supervise)
    verdict.notes.append(f"broker down {outage:.0f} s")
    if restarts:
        verdict.notes.append(f"{len(restarts)} worker restarts (first: {restarts[0]})")
    return verdict


def fault_scale(f: Fault) -> Verdict:
    """Scale one worker to three and then to two in one group while traffic flows."""
    f.partitions = 6
    f.setup_topics()
    records = traffic(f.opts.events, f.seed)
    expected = expect(records, partitions=f.partitions)
    t0 = time.monotonic()
    f.feed(records, seconds=50.0)
    f.start_worker("w1")
    f.sleep(15.0 - (time.monotonic() - t0), "running one worker")
    f.start_worker("w2")
    f.start_worker("w3")
    log(f"{f.name}: three workers")
    f.sleep(max(10.0, 35.0 - (time.monotonic() - t0)), "running three workers")
    code = f.signal("w3", signal.SIGTERM)
    del f.workers["w3"]
    log(f"{f.name}: w3 stopped with SIGTERM (exit {code}); two workers")
    verdict = f.settle(lambda: f.compare(expected), _no_exits(f))
    verdict.notes.append(f"1 -> 3 -> 2 workers, {f.partitions} partitions")
    return verdict


def fault_malformed(f: Fault) -> Verdict:
    """Mix 10,000 malformed records into valid traffic: all dead-lettered, the rest exact, no exit."""
    f.setup_topics()
    valid = traffic(f.opts.events // 3, f.seed)
    expected = expect(valid, partitions=f.partitions)
    bad = Maker(random.Random(f.seed)).batch(MALFORMED)
    positions = _produce_mixed(f, valid, bad)
    f.start_worker("w1")
    bad_at = {pos: b for pos, b in positions.items() if b is not None}
    deadletter = f.topics.output("deadletter")
    summary: dict[str, Any] = {}

    def check() -> Verdict:
        verdict = f.compare(expected)
        letters = read_topic(f.bootstrap, deadletter)
        verdict.records += len(letters)
        seen: Counter[tuple[str, int, int]] = Counter()
        reasons: Counter[str] = Counter()
        largest = 0
        unreadable = 0
        for out in letters:
            size = len(out.value or b"")
            largest = max(largest, size)
            try:
                letter = orjson.loads(out.value or b"")
                where = (letter["topic"], letter["partition"], letter["offset"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                unreadable += 1
                continue
            seen[where] += 1
            reasons[str(letter.get("reason"))] += 1
        missing = [pos for pos in bad_at if pos not in seen]
        wrong = [pos for pos in seen if pos not in bad_at]
        oversize = sum(1 for out in letters if len(out.value or b"") >= DEADLETTER_LIMIT)
        if missing:
            kinds = Counter(bad_at[pos].kind for pos in missing)
            verdict.problems.append(f"{len(missing)} bad records not dead-lettered (by kind: {dict(kinds)})")
        if wrong:
            verdict.problems.append(f"{len(wrong)} valid records dead-lettered (e.g. {wrong[0]})")
        if oversize:
            verdict.problems.append(f"{oversize} dead letters of {DEADLETTER_LIMIT // 1000} KB or more")
        if unreadable:
            verdict.problems.append(f"{unreadable} dead letters without topic/partition/offset")
        repeats = sum(n - 1 for n in seen.values() if n > 1)
        if repeats and f.opts.guarantee == "exactly_once":
            verdict.problems.append(f"{repeats} dead letters repeated")
        summary.update(dead=len(seen), reasons=reasons, largest=largest)
        return verdict

    def supervise() -> None:
        try:
            _no_exits(f)()
        except Failed as exc:
            check()
            raise Failed(
                f"{exc} ({summary.get('dead', 0)} of {len(bad_at)} bad records dead-lettered by then)"
            ) from None

    verdict = f.settle(check, supervise)
    supervise()
    verdict.notes.append(
        f"{len(bad_at)} bad records, {summary.get('dead', 0)} dead-lettered, largest dead letter "
        f"{summary.get('largest', 0) / 1000:.0f} KB, reasons {dict(summary.get('reasons', {}))}"
    )
    return verdict


# --- helpers of the faults ----------------------------------------------------------------------


def _processed(worker: WorkerProcess) -> float:
    try:
        return worker.processed()
    except OSError:
        return -1.0


def _no_exits(f: Fault) -> Callable[[], None]:
    """Return a check that fails the fault when a worker exited or hangs after a crash."""

    def supervise() -> None:
        for name, code in f.exited():
            raise Failed(f"worker {name} exited with {code}: {last_error(f.workers[name])}")
        for name, reason in f.hung():
            raise Failed(f"worker {name} crashed ({reason}) but its process did not exit in {HANG_S:.0f} s")

    return supervise


def _produce_mixed(f: Fault, valid: list[Record], bad: list[Bad]) -> dict[tuple[str, int, int], Bad | None]:
    """Produce valid and malformed records interleaved; return where each landed (None = a valid one)."""
    producer = Producer(
        {
            "bootstrap.servers": f.bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.max.bytes": 1_048_000,  # the broker's default limit is 1 MiB + 12 bytes
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    landed: dict[tuple[str, int, int], Bad | None] = {}
    errors: list[str] = []

    def on_delivery(item: Bad | None) -> Callable[[Any, Any], None]:
        def report(error: Any, message: Any) -> None:
            if error is not None:
                errors.append(str(error))
            else:
                landed[(message.topic(), message.partition(), message.offset())] = item

        return report

    rng = random.Random(f.seed)
    items: list[tuple[float, Bad | Record]] = [(float(i), r) for i, r in enumerate(valid)]
    items += [(rng.uniform(0, len(valid)), b) for b in bad]
    items.sort(key=lambda p: p[0])
    for n, (_, item) in enumerate(items):
        if isinstance(item, Bad):
            topic, key, value, tag = f.topics.source(item.source), item.key, item.value, item
        else:
            source, user, doc = item
            topic, key, value, tag = f.topics.source(source), user.encode(), orjson.dumps(doc), None
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery(tag))
                break
            except BufferError:
                producer.poll(0.1)
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(60) or errors:
        raise Failed(f"producing the mixed input failed: {errors[:3]}")
    return landed


def _free_port_pair() -> int:
    """Return a free TCP port whose successor is free too (the broker's controller port)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise Failed("no pair of free ports for a private broker")


class Broker:
    """A private single-node broker of ``deploy/kafka/kafka.sh`` on its own port and data directory."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.pidfile = ROOT / ".cache" / "kafka" / f"broker-{port}.pid"
        self.env = {**os.environ, "KAFKA_PORT": str(port)}
        self.env.pop("KAFKA_CONTROLLER_PORT", None)

    def _script(self, command: str, timeout: float) -> None:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), command],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise Failed(
                f"kafka.sh {command} on port {self.port} failed: {(done.stderr or done.stdout)[-400:]}"
            )

    def start(self, timeout: float) -> None:
        """Start it (on its existing data, if any: ``kafka.sh start`` formats only an empty directory)."""
        self._script("start", timeout)

    def kill(self) -> None:
        """SIGKILL the broker's JVM and wait until it is gone."""
        pid = int(self.pidfile.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop it and delete its data."""
        self._script("stop", 90)


# --- the runner ---------------------------------------------------------------------------------

FAULTS: dict[str, tuple[Callable[[Fault], Verdict], float]] = {
    "baseline": (fault_baseline, 90.0),
    "sigkill-random": (fault_sigkill_random, 240.0),
    **{
        f"sigkill-in-flush-{phase}": (partial(fault_sigkill_in_flush, phase=phase), 90.0)
        for phase in FLUSH_PHASES
    },
    "broker-kill": (fault_broker_kill, 150.0),
    "scale-1-3-2": (fault_scale, 120.0),
    "malformed": (fault_malformed, 120.0),
}


def run_one(name: str, opts: Options, workdir: Path) -> bool:
    """Run one fault, print its line and return whether it passed."""
    func, timeout = FAULTS[name]
    log(f"{name}: start (time limit {timeout:.0f} s)")
    f = Fault(name, opts, timeout, workdir)
    if opts.keep:
        log(f"{name}: topics {f.topics.prefix}.*, app id {f.app_id}")
    started = time.monotonic()
    passed = False
    try:
        verdict = func(f)
        passed, details = verdict.ok, verdict.line()
    except FaultTimeout as exc:
        details = f"timed out after {timeout:.0f} s while {exc}"
    except Failed as exc:
        details = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug in one fault must not stop the others
        traceback.print_exc(file=sys.stderr)
        details = f"error: {type(exc).__name__}: {exc}"
    finally:
        f.cleanup()
    status = "PASS" if passed else "FAIL"
    print(f"fault {name}: {status} {details} [{time.monotonic() - started:.0f} s]", flush=True)
    return passed


def _select(only: str | None) -> list[str]:
    if not only:
        return list(FAULTS)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [name for name in FAULTS if any(name == w or name.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(name == w or name.startswith(w) for name in FAULTS)]
    if unknown:
        sys.exit(f"chaos: unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the chosen faults and return the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="the broker the faults run against (broker-kill starts its own) [default: %(default)s]",
    )
    parser.add_argument(
        "--guarantee",
        choices=("exactly_once", "at_least_once"),
        default="exactly_once",
        help="STREAM_PROCESSING_GUARANTEE of the workers; exactly_once also forbids a repeated award id "
        "[default: %(default)s]",
    )
    parser.add_argument(
        "--only", help="comma-separated fault names or prefixes, e.g. sigkill-in-flush,malformed"
    )
    parser.add_argument(
        "--events", type=int, default=30_000, help="events of the larger faults [%(default)s]"
    )
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of sigkill-random [%(default)s]")
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=0.0,
        help="Faust's BROKER_SESSION_TIMEOUT for the workers in seconds, so that a killed worker's partitions "
        "move on within it; 0 keeps the worker's own [%(default)s]",
    )
    parser.add_argument(
        "--seed", type=int, default=2026, help="seed of traffic and fault timing [%(default)s]"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep topics, consumer groups, logs and data, for a post-mortem"
    )
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (func, timeout) in FAULTS.items():
            doc = (getattr(func, "func", func).__doc__ or "").strip().splitlines()[0]
            print(f"{name:26} {timeout:4.0f} s  {doc}")
        return 0
    names = _select(args.only)
    opts = Options(
        args.bootstrap, args.guarantee, args.events, args.kills, args.session_timeout, args.seed, args.keep
    )
    os.environ.pop("STREAM_FAULT_KILL", None)  # only the fault that wants it sets it
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    log(
        f"faults: {', '.join(names)}; broker {opts.bootstrap}; guarantee {opts.guarantee}; "
        f"events {opts.events}; seed {opts.seed}; logs in {workdir}"
    )
    failed = [name for name in names if not run_one(name, opts, workdir)]
    delete_groups(opts.bootstrap, LEFT_GROUPS, wait=(opts.session_timeout or 60.0) + 2.0)
    if failed or opts.keep:
        log(f"workers' logs and data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"{len(names) - len(failed)} of {len(names)} faults passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
