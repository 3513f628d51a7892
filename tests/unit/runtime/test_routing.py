"""Query routing: the advertised URL, where a request is answered, forwarding once, the fan-out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web as aioweb
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from stream.pipeline import partition_for
from stream.runtime import routing
from stream.runtime.routing import (
    FORWARDED_BY,
    SERVED_BY,
    Router,
    RouteUnavailable,
    advertised_url,
    decide,
    gather_all,
    owned_by,
    owner_of,
    was_forwarded,
)
from stream.settings import Settings, settings_help

TOPIC = "app-users-changelog"
PARTITIONS = 4

# --- the advertised URL ---------------------------------------------------------------------------------


def _advertised(explicit: str | None, host: str, fqdn: str = "vm", hostname: str = "vm") -> str:
    return advertised_url(explicit, host, 6066, fqdn=lambda: fqdn, hostname=lambda: hostname)


@pytest.mark.parametrize(
    ("host", "fqdn", "hostname", "expected"),
    [
        ("127.0.0.1", "w-0.svc.ns.svc.cluster.local", "w-0", "http://127.0.0.1:6066"),
        ("10.1.2.3", "localhost", "vm", "http://10.1.2.3:6066"),
        ("worker-3.example", "localhost", "vm", "http://worker-3.example:6066"),
        ("::1", "localhost", "vm", "http://[::1]:6066"),
        # Bound to every address: the machine's dotted name, else its host name; never localhost.
        ("0.0.0.0", "w-0.svc.ns.svc.cluster.local", "w-0", "http://w-0.svc.ns.svc.cluster.local:6066"),
        ("0.0.0.0", "w-0", "w-0", "http://w-0:6066"),
        ("0.0.0.0", "localhost", "vm", "http://vm:6066"),
        ("0.0.0.0", "localhost.localdomain", "vm", "http://vm:6066"),
        ("::", "host.example.com.", "host", "http://host.example.com:6066"),
        ("", "a1b2c3d4", "a1b2c3d4", "http://a1b2c3d4:6066"),
    ],
)
def test_default_advertised_url(host: str, fqdn: str, hostname: str, expected: str) -> None:
    assert _advertised(None, host, fqdn, hostname) == expected


@pytest.mark.parametrize(
    ("explicit", "expected"),
    [
        ("http://worker-0.workers:6066", "http://worker-0.workers:6066"),
        ("http://worker-0.workers:6066/", "http://worker-0.workers:6066"),
        ("  https://api.example/  ", "https://api.example"),
        ("http://[fd00::1]:8080", "http://[fd00::1]:8080"),
        ("", "http://vm:6066"),  # an empty variable is no setting
    ],
)
def test_explicit_advertised_url_wins(explicit: str, expected: str) -> None:
    assert _advertised(explicit, "0.0.0.0") == expected


@pytest.mark.parametrize(
    "explicit",
    [
        "worker-0:6066",
        "ftp://worker-0:6066",
        "http://0.0.0.0:6066",
        "http://[::]:6066",
        "http://:6066",
        "http://worker-0:99999",
        "http://worker-0:6066/api",
        "http://worker-0:6066?x=1",
        "http://user:pw@worker-0:6066",
    ],
)
def test_unreachable_advertised_urls_are_refused(explicit: str) -> None:
    with pytest.raises(ValueError, match="STREAM_WEB_ADVERTISED_URL"):
        _advertised(explicit, "127.0.0.1")


def test_the_setting_is_read_and_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAM_WEB_ADVERTISED_URL", raising=False)
    assert Settings().web_advertised_url is None
    monkeypatch.setenv("STREAM_WEB_ADVERTISED_URL", "http://worker-0.workers:6066")
    assert Settings().web_advertised_url == "http://worker-0.workers:6066"
    assert "STREAM_WEB_ADVERTISED_URL" in settings_help()


# --- where a request is answered ------------------------------------------------------------------------

ME, OTHER = "http://a:1", "http://b:2"


def test_held_and_ready_answers_here() -> None:
    for forwarded in (False, True):
        assert decide(3, held=True, ready=True, owner=ME, me=ME, forwarded=forwarded).action == "local"


def test_held_while_rebalancing_is_unavailable_not_forwarded() -> None:
    decision = decide(3, held=True, ready=False, owner=OTHER, me=ME, forwarded=False)
    assert decision.action == "unavailable"
    assert "rebalanc" in decision.reason


def test_not_held_goes_to_the_owner() -> None:
    assert decide(3, held=False, ready=True, owner=OTHER, me=ME, forwarded=False) == routing.Decision(
        "forward", OTHER
    )
    # Even while this worker rebalances: the owner decides whether its own state is complete.
    assert decide(3, held=False, ready=False, owner=OTHER, me=ME, forwarded=False).action == "forward"


def test_a_forwarded_request_is_never_forwarded_again() -> None:
    for owner in (OTHER, ME, None):
        decision = decide(3, held=False, ready=True, owner=owner, me=ME, forwarded=True)
        assert decision.action == "unavailable", owner
        assert "not held here" in decision.reason


def test_no_owner_or_an_owner_that_is_me_without_the_partition_is_unavailable() -> None:
    assert decide(3, held=False, ready=True, owner=None, me=ME, forwarded=False).action == "unavailable"
    assert decide(3, held=False, ready=True, owner=ME, me=ME, forwarded=False).action == "unavailable"


@settings(max_examples=300)
@given(key=st.binary(max_size=64), partitions=st.integers(1, 64))
def test_faust_routers_partitioner_agrees_with_partition_for(key: bytes, partitions: int) -> None:
    # app.router.key_store -> producer.key_partition -> aiokafka's DefaultPartitioner, for raw bytes keys
    # (the user's id, b"\x00g\x00<group>", ...): the same partition as the pipeline's.
    every = list(range(partitions))
    assert DefaultPartitioner()(key, every, every) == partition_for(key, partitions)


def test_owner_of_reads_the_assignors_table_metadata() -> None:
    metadata = {ME: {TOPIC: [0, 2]}, OTHER: {TOPIC: [1], "other-changelog": [3]}, "http://c:3": {}}
    assert [owner_of(metadata, TOPIC, p) for p in range(4)] == [ME, OTHER, ME, None]
    assert owner_of({}, TOPIC, 0) is None


def test_the_loop_guard_header_is_case_insensitive_as_http_headers_are() -> None:
    assert was_forwarded(CIMultiDict({FORWARDED_BY.lower(): ME}))
    assert not was_forwarded(CIMultiDict({"Accept": "application/json"}))


def test_the_forwarded_path_and_query_are_kept_as_received() -> None:
    rel = URL("/users/a%20b%2Fc?x=1&y=%C3%A9", encoded=True)
    target = routing._target("http://b:2/", rel)
    assert str(target) == "http://b:2/users/a%20b%2Fc?x=1&y=%C3%A9"


# --- forwarding, against real HTTP servers standing in for the other workers ---------------------------


class FakeView:
    """The two response builders of faust.web.View the router uses, over aiohttp."""

    def json(self, value: Any, *, status: int = 200, headers: Any = None) -> aioweb.Response:
        return aioweb.json_response(value, status=status, headers=headers)

    def bytes(
        self, value: bytes, *, content_type: str | None = None, status: int = 200, headers: Any = None
    ) -> Any:
        return aioweb.Response(body=value, content_type=content_type, status=status, headers=headers)


@dataclass
class FakeWorker:
    """What the router reads of a worker: its Faust app's settings, assignor, router and HTTP client."""

    me: str
    metadata: dict[str, dict[str, list[int]]]
    active: set[int] = field(default_factory=set)
    rebalancing: bool = False
    app: Any = None
    table: Any = None
    store: Any = None
    settings: Any = None

    def __post_init__(self) -> None:
        self.app = SimpleNamespace(
            conf=SimpleNamespace(canonical_url=URL(self.me)),
            assignor=SimpleNamespace(is_active=lambda tp: tp.topic == TOPIC and tp.partition in self.active),
            router=SimpleNamespace(
                table_metadata=lambda name: {
                    url: {TOPIC: tps.get(TOPIC, [])} for url, tps in self.metadata.items()
                },
                tables_metadata=lambda: self.metadata,
            ),
            rebalancing=False,
            in_recovery=False,
            http_client=None,
        )
        self.table = SimpleNamespace(
            name="users", changelog_topic=SimpleNamespace(get_topic_name=lambda: TOPIC)
        )
        self.store = SimpleNamespace(holds=lambda p: True)  # every database open, standbys included
        self.settings = SimpleNamespace(topic_partitions=PARTITIONS)


def _key_on(partition: int) -> bytes:
    n = 0
    while partition_for(f"user-{n}".encode(), PARTITIONS) != partition:
        n += 1
    return f"user-{n}".encode()


@asynccontextmanager
async def _server(
    handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]],
) -> AsyncIterator[str]:
    app = aioweb.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _request(path: str, headers: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(rel_url=URL(path), headers=CIMultiDict(headers or {}), method="GET")


def test_a_request_is_forwarded_once_and_the_owners_answer_returned_as_is() -> None:
    seen: list[tuple[str, str | None]] = []

    async def owner(request: aioweb.Request) -> aioweb.Response:
        seen.append((str(request.rel_url), request.headers.get(FORWARDED_BY)))
        return aioweb.json_response(
            {"error": "unknown user 'x y'"}, status=404, headers={SERVED_BY: "the owner"}
        )

    async def main() -> None:
        async with _server(owner) as url, aiohttp.ClientSession() as client:
            worker = FakeWorker(ME, {ME: {TOPIC: [0, 1]}, url: {TOPIC: [2, 3]}}, active={0, 1})
            worker.app.http_client = client
            calls: list[int] = []

            @owned_by(worker, lambda user_id: user_id.encode())  # type: ignore[arg-type]
            async def view(view: Any, request: Any, partition: int, user_id: str) -> Any:
                calls.append(partition)
                return view.json({"user_id": user_id, "partition": partition})

            remote = _key_on(2).decode()
            response = await view(FakeView(), _request(f"/users/{remote}?q=%20"), user_id=remote)
            assert (response.status, response.body) == (404, b'{"error": "unknown user \'x y\'"}')
            assert response.content_type == "application/json"
            assert response.headers[SERVED_BY] == "the owner"
            assert seen == [(f"/users/{remote}?q=%20", ME)]  # the loop guard names the forwarder
            assert calls == []

            local = _key_on(1).decode()
            response = await view(FakeView(), _request(f"/users/{local}"), user_id=local)
            assert response.status == 200
            assert response.headers[SERVED_BY] == ME
            assert calls == [1]
            assert len(seen) == 1

            # The same request arriving already forwarded is answered 503 here, not sent on.
            response = await view(
                FakeView(), _request(f"/users/{remote}", {FORWARDED_BY: OTHER}), user_id=remote
            )
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert len(seen) == 1

    asyncio.run(main())


def test_a_standby_copy_is_not_answered_from_and_rebalancing_is_503() -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as client:
            # Partition 2 is open here (a standby) but active nowhere known: no answer from the copy.
            worker = FakeWorker(ME, {ME: {TOPIC: [0, 1]}}, active={0, 1})
            worker.app.http_client = client
            router = Router(worker)  # type: ignore[arg-type]

            async def local(partition: int) -> Any:
                raise AssertionError("answered from a standby")

            response = await router.answer(FakeView(), _request("/users/x"), _key_on(2), local)  # type: ignore[arg-type]
            assert response.status == 503
            assert b"no worker owns partition 2" in response.body

            worker.app.rebalancing = True
            response = await router.answer(FakeView(), _request("/users/x"), _key_on(0), local)  # type: ignore[arg-type]
            assert response.status == 503
            assert b"rebalanced" in response.body

    asyncio.run(main())


def test_an_owner_that_does_not_answer_is_503_within_the_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "ROUTE_TIMEOUT_S", 0.2)

    async def slow(request: aioweb.Request) -> aioweb.Response:
        await asyncio.sleep(1)
        return aioweb.json_response({})

    async def main() -> None:
        async with _server(slow) as url, aiohttp.ClientSession() as client:
            closed = "http://127.0.0.1:1"  # nothing listens on port 1
            for owner in (url, closed):
                worker = FakeWorker(ME, {ME: {TOPIC: [0, 1]}, owner: {TOPIC: [2, 3]}}, active={0, 1})
                worker.app.http_client = client
                router = Router(worker)  # type: ignore[arg-type]
                started = asyncio.get_running_loop().time()
                response = await router.answer(FakeView(), _request("/users/x"), _key_on(3), _never)  # type: ignore[arg-type]
                assert response.status == 503, owner
                assert b"did not answer" in response.body
                assert asyncio.get_running_loop().time() - started < 0.9

    asyncio.run(main())


async def _never(partition: int) -> Any:
    raise AssertionError("answered here")


def test_gather_all_asks_every_member_with_the_loop_guard() -> None:
    async def member(request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response(
            {
                "port": request.url.port,
                "path": request.path_qs,
                "forwarded": request.headers.get(FORWARDED_BY),
            }
        )

    async def failing(request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"error": "rebalancing"}, status=503)

    async def main() -> None:
        async with (
            _server(member) as me,
            _server(member) as other,
            _server(failing) as bad,
            aiohttp.ClientSession() as client,
        ):
            # A member with no partitions is still a member.
            worker = FakeWorker(me, {me: {TOPIC: [0, 1, 2, 3]}, other: {}})
            worker.app.http_client = client
            got = await gather_all(worker, "/report?week=2026-W48")  # type: ignore[arg-type]
            assert [url for url, _ in got] == sorted([me, other])
            for url, body in got:
                assert body == {"port": URL(url).port, "path": "/report?week=2026-W48", "forwarded": me}

            worker.metadata[bad] = {TOPIC: []}
            with pytest.raises(RouteUnavailable, match="answered 503"):
                await gather_all(worker, "/report")  # type: ignore[arg-type]

            worker.metadata.clear()
            with pytest.raises(RouteUnavailable, match="not known yet"):
                await gather_all(worker, "/report")  # type: ignore[arg-type]

    asyncio.run(main())
