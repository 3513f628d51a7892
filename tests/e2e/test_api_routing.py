"""End to end: any worker of the group answers the query API for any user, the owner computing it.

Two workers in one group share 4 partitions; each user's state lives on one of them. GET /users/<id>
on either worker answers with the user's state (forwarded to the owner when needed, once), an unknown
user is a 404 JSON error from both, and a request already forwarded is never forwarded again. The second
worker binds 0.0.0.0 and advertises an explicit URL (STREAM_WEB_ADVERTISED_URL).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from stream.pipeline import partition_for
from stream.runtime.routing import FORWARDED_BY, SERVED_BY
from tests.e2e.harness import Topics, WorkerProcess, create_topics, make_producer, produce

pytestmark = pytest.mark.e2e

PARTITIONS = 4
TZ = ZoneInfo("Asia/Shanghai")


def _users() -> dict[str, int]:
    """Return two user ids per partition, with the number of text messages each sends (1 or 2)."""
    users: dict[str, int] = {}
    per_partition = dict.fromkeys(range(PARTITIONS), 0)
    n = 0
    while min(per_partition.values()) < 2:
        user = f"user-{n}"
        p = partition_for(user.encode(), PARTITIONS)
        if per_partition[p] < 2:
            per_partition[p] += 1
            users[user] = 1 + per_partition[p] % 2
        n += 1
    return users


def _unknown() -> list[str]:
    """Return one unknown user id per partition."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < PARTITIONS:
        found.setdefault(partition_for(f"nobody-{n}".encode(), PARTITIONS), f"nobody-{n}")
        n += 1
    return list(found.values())


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    """Return the status, headers and JSON body of GET path, whatever the status."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), orjson.loads(exc.read())


def _settled(workers: list[WorkerProcess]) -> dict[str, Any] | None:
    """Return the routing both workers agree on once each holds partitions and is ready, else None."""
    views = [_get(w.port, "/routing")[2] for w in workers]
    owners = views[0]["owners"]
    if any(v["owners"] != owners or not v["ready"] or not v["held"] for v in views):
        return None
    if None in owners.values() or {v["url"] for v in views} != set(owners.values()):
        return None
    for view in views:  # what a worker holds is what the group's metadata says it owns
        if sorted(view["held"]) != sorted(int(p) for p, url in owners.items() if url == view["url"]):
            return None
    return {"owners": owners, "urls": [v["url"] for v in views]}


def test_any_worker_answers_for_any_user(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    create_topics(bootstrap, topics, PARTITIONS)
    app_id = f"{topics.prefix}-a"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = WorkerProcess(bootstrap, topics, tmp_path / "one", app_id, PARTITIONS)
    second = WorkerProcess(bootstrap, topics, tmp_path / "two", app_id, PARTITIONS, STREAM_WEB_HOST="0.0.0.0")
    second.env["STREAM_WEB_ADVERTISED_URL"] = f"http://localhost:{second.port}"
    workers = [first, second]
    try:
        first.start()
        second.start()
        deadline = time.monotonic() + 40
        routing = None
        while routing is None and time.monotonic() < deadline:
            time.sleep(0.5)
            routing = _settled(workers)
        assert routing is not None, f"{first.log_tail()}\n----\n{second.log_tail()}"
        assert routing["urls"] == [f"http://127.0.0.1:{first.port}", f"http://localhost:{second.port}"]
        owners = routing["owners"]

        users = _users()
        noon = datetime.now(TZ).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
        ts = int(noon.timestamp() * 1000)
        records = [
            (
                "message",
                user,
                {"event_id": f"{user}-{i}", "user_id": user, "team_id": "T1", "kind": "text", "ts": ts},
            )
            for user, count in users.items()
            for i in range(count)
        ]
        produce(make_producer(bootstrap), topics, records)
        expected = {user: 2 * count for user, count in users.items()}  # a text message is worth 2

        def points_from(worker: WorkerProcess) -> dict[str, int | None]:
            got: dict[str, int | None] = {}
            for user in users:
                status, _, body = _get(worker.port, f"/users/{user}")
                got[user] = body.get("points") if status == 200 else None
            return got

        deadline = time.monotonic() + 30
        while points_from(first) != expected and time.monotonic() < deadline:
            time.sleep(0.5)

        for worker in workers:
            for user, points in expected.items():
                status, headers, body = _get(worker.port, f"/users/{user}")
                assert status == 200, (worker.port, user, body)
                assert (body["user_id"], body["points"], body["team_id"]) == (user, points, "T1")
                owner = owners[str(partition_for(user.encode(), PARTITIONS))]
                assert headers[SERVED_BY] == owner, (worker.port, user)
            for user in _unknown():
                status, headers, body = _get(worker.port, f"/users/{user}")
                assert status == 404, (worker.port, user, body)
                assert body == {"error": f"unknown user {user!r}"}
                assert headers[SERVED_BY] == owners[str(partition_for(user.encode(), PARTITIONS))]
        # Both workers answered for users of both: each forwarded what it does not own.
        assert {owners[str(partition_for(u.encode(), PARTITIONS))] for u in users} == set(routing["urls"])

        # A forwarded request reaching a worker that does not own the user is refused, not sent on.
        for worker, url in zip(workers, routing["urls"], strict=True):
            user = next(u for u in users if owners[str(partition_for(u.encode(), PARTITIONS))] != url)
            status, headers, body = _get(worker.port, f"/users/{user}", {FORWARDED_BY: "http://elsewhere:1"})
            assert status == 503, (worker.port, user, body)
            assert "not held here" in body["error"]
            assert headers["Retry-After"] == "1"
    finally:
        second.stop()
        first.stop()
