"""End to end: the operator's side of invitations against a real broker and two workers.

A rules file with a daily limit of 1 makes an inviter's second and third registration of the day wait for
an operator. ``stream invites pending`` lists them (gathered from both workers), ``stream invites approve``
and ``reject`` write one decision record each to the decisions topic (keyed by the invitee, on the
invitee's partition, following its JSON Schema), and the workers apply them: nothing waits any more, the
approved invitation opens its window from the decision, the rejected one expires. The query API shows
each user's invitations, the funnel, the budget; the metrics count the funnel; ``stream report invites``
prints it. Before any worker ran, a decision is refused: its topic does not exist.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from jsonschema import Draft202012Validator

from stream.engine.periods import Calendar
from stream.pipeline import partition_for
from stream.schemas import load_schema
from tests.e2e.harness import ROOT, Topics, WorkerProcess, make_producer, produce, run_stream

pytestmark = pytest.mark.e2e

PARTITIONS = 4
TZ = "Asia/Shanghai"
HOUR = 3_600_000


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _wait(what: str, probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Return the first truthy answer of ``probe``, polling; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, KeyError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached in {timeout} s (last: {last!r})")


def _records(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, Any]]:
    """Return (partition, key, JSON value) of every record of ``topic`` so far."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out = []
        deadline = time.monotonic() + 20
        while ends and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or (message.error() and message.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert not message.error(), message.error()
            out.append((message.partition(), message.key(), orjson.loads(message.value())))
            if message.offset() + 1 >= ends[message.partition()]:
                del ends[message.partition()]
        return out
    finally:
        consumer.close()


def test_operators_list_approve_and_reject_waiting_invitations(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    text = (ROOT / "stream" / "rules" / "default.yaml").read_text()
    assert "  daily_limit: 20\n" in text
    rules.write_text(text.replace("  daily_limit: 20\n", "  daily_limit: 1\n"))
    decisions_topic = f"{topics.prefix}.invite-decisions"
    env = {
        "STREAM_TOPIC_INVITES": topics.source("invite"),
        "STREAM_TOPIC_INVITE_DECISIONS": decisions_topic,
        "STREAM_RULES_FILE": str(rules),
    }
    cli_env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "STREAM_TOPIC_INVITE_DECISIONS": decisions_topic}

    # No worker ran yet: no decisions topic, and the API cannot check. --force still finds no topic.
    refused = run_stream(
        ["invites", "approve", "b", "--force", "--api", "http://127.0.0.1:1"], cli_env, timeout=60
    )
    assert refused.returncode == 1, refused.stderr
    assert "could not check that 'b' waits" in refused.stderr
    assert f"topic {decisions_topic!r} does not exist" in refused.stderr

    workers = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        workers.append(
            WorkerProcess(bootstrap, topics, tmp_path / name, f"{topics.prefix}-a", PARTITIONS, **env)
        )
    try:
        for worker in workers:
            worker.start()
        _scenario(bootstrap, topics, workers, decisions_topic, cli_env)
    finally:
        for worker in workers:
            if worker.proc is not None:
                worker.stop()


def _scenario(
    bootstrap: str,
    topics: Topics,
    workers: list[WorkerProcess],
    decisions_topic: str,
    cli_env: dict[str, str],
) -> None:
    port = workers[0].port
    api = f"http://127.0.0.1:{port}"
    cli_env = {**cli_env, "STREAM_API_URL": api}
    registered = int(time.time() * 1000) - 2 * HOUR
    day = Calendar(TZ).day_of(registered).name
    invites = [
        ("invite", "alice", {"type": "invited", "invitee_id": "a", "ts": registered - HOUR}),
        ("invite", "alice", {"type": "registered", "invitee_id": "a", "ts": registered}),
        ("invite", "alice", {"type": "registered", "invitee_id": "b", "ts": registered + 1000}),
        ("invite", "alice", {"type": "registered", "invitee_id": "c", "ts": registered + 2000}),
    ]
    records = [
        (source, key, {"event_id": f"e{i}", "inviter_id": key, "channel": "link", **value})
        for i, (source, key, value) in enumerate(invites)
    ]
    producer = make_producer(bootstrap)
    produce(producer, topics, records)

    def waiting() -> list[str]:
        status, body = _get(port, "/invites/pending")
        return [row["invitee"] for row in body["pending"]] if status == 200 else []

    assert _wait("b and c wait for an operator", lambda: waiting() == ["b", "c"])
    listed = run_stream(["invites", "pending"], {**cli_env, "STREAM_TIMEZONE": TZ})
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("2 invitations waiting for an operator, 40 points promised")
    assert [line.split()[:3] for line in lines[2:]] == [["b", "alice", "link"], ["c", "alice", "link"]]
    assert lines[2].split()[5:] == ["daily_limit", "20"]

    status, alice = _get(workers[1].port, "/users/alice")  # any worker answers
    assert status == 200
    held = [a for a in alice["invites"]["pending"] if a["invitee"] == "b"]
    assert [(a["waiting_for"], a["deadline"]) for a in held] == [("operator", None), ("operator", None)]

    status, b = _get(port, "/users/b")  # b never logged in: known only through the invitation
    assert status == 200 and b["balance"] == 0 and b["invites"]["invitation"]["status"] == "held"
    assert b["invites"]["invitation"]["waiting_for_operator"] == "daily_limit"
    assert _get(port, "/users/nobody")[0] == 404

    approved = run_stream(["invites", "approve", "b", "--operator", "ops-anna"], cli_env)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("approved b: decision ")
    assert f"by ops-anna written to {decisions_topic} [partition {partition_for(b'b', PARTITIONS)}" in (
        approved.stdout
    )
    rejected = run_stream(["invites", "reject", "c"], cli_env)
    assert rejected.returncode == 0, rejected.stderr
    not_waiting = run_stream(["invites", "approve", "nobody"], cli_env)
    assert not_waiting.returncode == 1
    assert "'nobody' is not waiting for an operator" in not_waiting.stderr

    sent = sorted(_records(bootstrap, decisions_topic), key=lambda r: r[1] or b"")  # b's, then c's
    schema = Draft202012Validator(load_schema("rewards.invite-decisions"))
    assert [(r[1], r[2]["decision"]) for r in sent] == [(b"b", "approve"), (b"c", "reject")]
    for partition, key, value in sent:
        schema.validate(value)
        assert key is not None and partition == partition_for(key, PARTITIONS)  # the invitee's partition
        assert value["invitee_id"] == key.decode()
        assert abs(value["ts"] - time.time() * 1000) < 120_000
    assert sent[0][2]["operator"] == "ops-anna" and sent[1][2]["operator"]  # the login name by default

    assert _wait(
        "nothing waits any more", lambda: waiting() == [] and _get(port, "/invites/pending")[0] == 200
    )
    status, b = _get(port, "/users/b")
    assert status == 200
    invitation = b["invites"]["invitation"]
    assert invitation["status"] == "open" and invitation["inviter"] == "alice"
    assert invitation["deadline"] - sent[0][2]["ts"] == 7 * 24 * HOUR  # the window runs from the approval
    assert [(a["part"], a["waiting_for"]) for a in b["invites"]["pending"]] == [
        ("w1", "login"),
        ("w2", "activity"),
    ]
    c = _wait("c's rejection applied", lambda: _get(port, "/users/c")[1]["invites"]["invitation"]["rejected"])
    assert c is True

    def alice_entries() -> dict[str, Any] | None:
        entries = {e["invitee"]: e for e in _get(port, "/users/alice")[1]["invites"]["invitees"]}
        return entries if entries["c"]["parts"]["i1"]["status"] == "expired" else None

    entries = _wait("alice's side settled", alice_entries)
    assert [entries[x]["credited_number"] for x in "abc"] == [1, 2, 3]
    assert (entries["b"]["status"], entries["c"]["status"]) == ("promised", "closed")

    status, funnel = _get(workers[1].port, f"/invites/funnel?from={day}&to={day}")
    assert status == 200
    link = funnel["channels"]["link"]
    assert (link["invited"], link["registered"], link["held"], link["expired"]) == (1, 3, 2, 4)
    assert _get(port, "/invites/funnel?from=2026-02-30&to=2026-03-01")[0] == 400
    assert _get(port, f"/invites/funnel?from={day}")[0] == 400
    report = run_stream(["report", "invites", "--from", day, "--to", day], cli_env)
    assert report.returncode == 0, report.stderr
    assert [line.split()[:4] for line in report.stdout.splitlines() if line.startswith("  link")] == [
        ["link", "1", "3", "2"]
    ]

    status, budget = _get(workers[1].port, f"/invites/budget/{day[:7]}")
    assert (status, budget["budget"], budget["promised"]) == (200, None, 0)  # no budget in these rules
    assert _get(port, "/invites/budget/2026-13")[0] == 400

    samples: dict[str, float] = {}
    for worker in workers:
        for name, value in worker.metrics().items():
            samples[name] = samples.get(name, 0.0) + value
    assert samples['stream_invite_funnel_total{channel="link",stage="registered"}'] == 3
    assert samples['stream_invite_funnel_total{channel="link",stage="held"}'] == 2
