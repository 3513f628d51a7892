"""Answer a query on the worker that owns its key: here, or forwarded once to the owner.

State is one Faust table partitioned like the input topics: an owner key (a user's id, or another key
space's id such as ``b"\\x00g\\x00<group>"``) lives on partition ``partition_for(key)`` (murmur2), and
that partition is active on one worker of the group. A view of such state says which owner key it
answers for and how to answer it from local state (``owned_by``); any worker may receive the request:

- the partition is active here and its database open: answer here (503 while the worker rebalances or
  recovers, since its state may be incomplete then). Never from a standby copy: Faust opens the databases
  of standby partitions too, and they lag behind their owner;
- else the request goes to the worker that Faust's partition assignor names for the partition, in the
  metadata every member receives with its assignment (``app.router.table_metadata``: advertised URL ->
  changelog topic -> partitions). The owner's status and JSON body are returned as they are;
- no owner known (before the first assignment), the owner unreachable or slow, or a request that was
  already forwarded once (header ``X-Stream-Forwarded-By``) reaching a worker that does not hold the
  partition (the assignment moved under it): 503 with a JSON error and ``Retry-After``, never a hang and
  never a second hop.

Faust's own ``app.router.route_req`` / ``@app.table_route`` (faust/app/router.py, faust/app/base.py) is
not used as is: it serves locally whenever the assignor names this worker, even while its state recovers;
it forwards every request header, with no loop guard and no time-out of its own (aiohttp's default is 5
minutes); and it finds the partition through the aiokafka producer (``producer.key_partition``), which
needs that producer's metadata of the changelog topic. The partition is the same (aiokafka's
DefaultPartitioner is murmur2 & 0x7fffffff % partitions, as ``partition_for``; a unit test checks it),
and so is the owner: both come from the assignor's table metadata. The forwarding uses Faust's HTTP
client (``app.http_client``).

The URL a worker advertises in that metadata is Faust's ``canonical_url``: ``advertised_url`` picks a
reachable one (stream/runtime/app.py passes it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson
from faust import web
from faust.types import TP
from yarl import URL

from stream.pipeline import partition_for

if TYPE_CHECKING:
    from stream.runtime.app import Worker

log = logging.getLogger(__name__)

FORWARDED_BY = "X-Stream-Forwarded-By"  # set on a forwarded request: the receiver never forwards it again
SERVED_BY = "X-Stream-Served-By"  # set on every routed answer: the URL of the worker that answered
ROUTE_TIMEOUT_S = 5.0
RETRY_AFTER_S = 1
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

LocalHandler = Callable[..., Awaitable[web.Response]]  # (view, request, partition, **match_info)
ViewHandler = Callable[..., Awaitable[web.Response]]  # (view, request, **match_info)


class RouteUnavailable(Exception):
    """The answer cannot be had now (no owner known, owner unreachable): the client should retry."""


# --- the advertised URL ---------------------------------------------------------------------------------


def _url_host(host: str) -> str:
    """Return ``host`` as it goes into a URL (an IPv6 address in brackets)."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _machine_name(fqdn: Callable[[], str], hostname: Callable[[], str]) -> str:
    """Return the dotted name of this machine if it has one, else its host name; never ``localhost``."""
    name = fqdn().strip().rstrip(".")
    if "." in name and name.lower() not in LOOPBACK_NAMES and not name.lower().startswith("localhost."):
        return name
    return hostname().strip()


def advertised_url(
    explicit: str | None,
    bind_host: str,
    port: int,
    *,
    fqdn: Callable[[], str] = socket.getfqdn,
    hostname: Callable[[], str] = socket.gethostname,
) -> str:
    """Return the URL the other workers reach this worker's HTTP server at.

    ``explicit`` (STREAM_WEB_ADVERTISED_URL) wins: an ``http``/``https`` URL with a host that is not a
    wildcard address, and no path, query or fragment. Otherwise ``http://<bind_host>:<port>`` when the
    server binds one address; when it binds every address (0.0.0.0, ::) that address is no way to reach
    it, so the host is the machine's dotted name (``socket.getfqdn()``: a StatefulSet pod's
    ``pod.service.namespace.svc.cluster.local``) if it has one, else its host name
    (``socket.gethostname()``, Faust's own default). ``socket.getfqdn()`` may answer ``localhost``
    (when /etc/hosts lists the host name on a loopback line), which is never used.
    """
    if explicit is not None and explicit.strip():
        return _checked(explicit.strip())
    host = bind_host.strip()
    if host in WILDCARD_HOSTS:
        host = _machine_name(fqdn, hostname)
    return f"http://{_url_host(host.strip('[]'))}:{port}"


def _checked(url: str) -> str:
    def refuse(why: str) -> ValueError:
        return ValueError(f"STREAM_WEB_ADVERTISED_URL: {why}: {url!r}")

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise refuse("expected an http:// or https:// URL")
    try:
        port = parts.port
    except ValueError:
        raise refuse("invalid port") from None
    host = parts.hostname or ""
    if host in WILDCARD_HOSTS:
        raise refuse("the host must be a name or address the other workers can reach, not a wildcard")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise refuse("expected scheme, host and port only (no path, query, fragment or user)")
    netloc = _url_host(host) + (f":{port}" if port is not None else "")
    return f"{parts.scheme}://{netloc}"


# --- who answers ---------------------------------------------------------------------------------------


def owner_of(
    distribution: Mapping[str, Mapping[str, Iterable[int]]], topic: str, partition: int
) -> str | None:
    """Return the URL that the assignor's metadata names for ``partition`` of ``topic``, or None."""
    for url, topics in distribution.items():
        if partition in topics.get(topic, ()):
            return url
    return None


def was_forwarded(headers: Mapping[str, str]) -> bool:
    """Tell whether a request was forwarded by another worker (then it must not be forwarded again)."""
    return FORWARDED_BY in headers


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request is answered: ``local``, ``forward`` to ``owner``, or ``unavailable`` (503)."""

    action: Literal["local", "forward", "unavailable"]
    owner: str | None = None
    reason: str = ""


def decide(
    partition: int, *, held: bool, ready: bool, owner: str | None, me: str, forwarded: bool
) -> Decision:
    """Decide where a request for ``partition`` is answered.

    ``held``: the partition is active here with its database open; ``ready``: this worker is not
    rebalancing or recovering; ``owner``: the URL the assignor names for the partition; ``me``: this
    worker's advertised URL; ``forwarded``: the request came from another worker.
    """
    if held:
        if ready:
            return Decision("local", me)
        return Decision("unavailable", me, f"partition {partition} is being rebalanced or recovered; retry")
    if forwarded:
        return Decision(
            "unavailable", owner, f"partition {partition} is not held here (the assignment is moving); retry"
        )
    if owner is None:
        return Decision("unavailable", None, f"no worker owns partition {partition} yet (rebalancing); retry")
    if owner == me:
        return Decision(
            "unavailable", me, f"partition {partition} is assigned here but not open yet (rebalancing); retry"
        )
    return Decision("forward", owner)


# --- the worker's side ----------------------------------------------------------------------------------


class Router:
    """Route the requests of one worker (see the module's description)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app

    @property
    def me(self) -> str:
        """Return this worker's advertised URL, as the assignor's metadata spells it."""
        return str(self.app.conf.canonical_url)

    @property
    def topic(self) -> str:
        """Return the table's changelog topic: the assignor's metadata is per changelog partition."""
        return str(self.worker.table.changelog_topic.get_topic_name())

    def partition(self, key: bytes) -> int:
        """Return the partition of an owner key."""
        return partition_for(key, self.worker.settings.topic_partitions)

    def held(self, partition: int) -> bool:
        """Tell whether ``partition`` is active here with its database open.

        An open database alone is not enough: Faust also opens the databases of standby partitions,
        whose copies lag behind their owner's.
        """
        return bool(self.app.assignor.is_active(TP(self.topic, partition))) and self.worker.store.holds(
            partition
        )

    def ready(self) -> bool:
        """Tell whether this worker's assigned state is complete (not rebalancing or recovering)."""
        return not (self.app.rebalancing or getattr(self.app, "in_recovery", False))

    def distribution(self) -> Mapping[str, Mapping[str, Iterable[int]]]:
        """Return advertised URL -> changelog topic -> partitions active there, from the assignor."""
        metadata: Mapping[str, Mapping[str, Iterable[int]]] = self.app.router.table_metadata(
            self.worker.table.name
        )
        return metadata

    def owner(self, partition: int) -> str | None:
        """Return the advertised URL of the worker the assignor names for ``partition``."""
        return owner_of(self.distribution(), self.topic, partition)

    def members(self) -> list[str]:
        """Return the advertised URLs of every member of the group, this one included."""
        return sorted(self.app.router.tables_metadata())

    async def answer(
        self,
        view: web.View,
        request: web.Request,
        key: bytes,
        local: Callable[[int], Awaitable[web.Response]],
    ) -> web.Response:
        """Answer a request about owner ``key``: ``local(partition)`` here, or the owner's answer."""
        partition = self.partition(key)
        decision = decide(
            partition,
            held=self.held(partition),
            ready=self.ready(),
            owner=self.owner(partition),
            me=self.me,
            forwarded=was_forwarded(request.headers),
        )
        if decision.action == "local":
            response = await local(partition)
            response.headers[SERVED_BY] = self.me
            return response
        if decision.action == "forward":
            assert decision.owner is not None
            try:
                return await self.forward(view, request, decision.owner)
            except RouteUnavailable as exc:
                log.warning("query for partition %s not forwarded: %s", partition, exc)
                return unavailable(view, str(exc))
        return unavailable(view, decision.reason)

    async def forward(self, view: web.View, request: web.Request, owner: str) -> web.Response:
        """Send ``request`` to ``owner`` once and return its status and body as they are."""
        url = _target(owner, request.rel_url)
        status, content_type, body, served_by = await self._get(url)
        return view.bytes(
            body, content_type=content_type, status=status, headers={SERVED_BY: served_by or owner}
        )

    async def _get(self, url: URL) -> tuple[int, str, bytes, str | None]:
        headers = {FORWARDED_BY: self.me, "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=ROUTE_TIMEOUT_S)
        try:
            async with self.app.http_client.get(url, headers=headers, timeout=timeout) as response:
                body = await response.read()
                return response.status, response.content_type, body, response.headers.get(SERVED_BY)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RouteUnavailable(
                f"the worker at {url.origin()} did not answer: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    async def fetch(self, key: bytes, path: str) -> tuple[int, Any]:
        """GET ``path`` from the owner of ``key`` (answered there, never forwarded again): status, JSON."""
        owner = self.owner(self.partition(key))
        if owner is None:
            raise RouteUnavailable(f"no owner known for partition {self.partition(key)} yet; retry")
        status, _, body, _ = await self._get(_target(owner, URL(path)))
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RouteUnavailable(f"{owner}{path} answered no JSON: {exc}") from exc

    async def gather_all(self, path: str) -> list[tuple[str, Any]]:
        """Ask every worker of the group, this one included, for ``path``; return (URL, JSON) by URL.

        The requests carry the loop-guard header, so a routed view answers only from its own state.
        Raise RouteUnavailable when the group's members are not known yet, or any of them does not
        answer 200 with JSON: a report merged from part of the partitions would be silently wrong.
        """
        members = self.members()
        if not members:
            raise RouteUnavailable("the group's members are not known yet (rebalancing); retry")
        answers = await asyncio.gather(*(self._get(_target(m, URL(path))) for m in members))
        results = []
        for member, (status, _, body, _) in zip(members, answers, strict=True):
            if status != 200:
                raise RouteUnavailable(
                    f"{member}{path} answered {status}: {body[:200].decode(errors='replace')}"
                )
            try:
                results.append((member, orjson.loads(body)))
            except orjson.JSONDecodeError as exc:
                raise RouteUnavailable(f"{member}{path} answered no JSON: {exc}") from exc
        return results


def _target(owner: str, rel_url: URL) -> URL:
    """Return ``rel_url`` (path and query, as received) on the worker at ``owner``."""
    return URL(owner.rstrip("/") + str(rel_url), encoded=True)


def unavailable(view: web.View, reason: str) -> web.Response:
    """Return a 503 JSON error that tells the client to retry."""
    return view.json({"error": reason}, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def owned_by(worker: Worker, owner_key: Callable[..., bytes]) -> Callable[[LocalHandler], ViewHandler]:
    """Make a view of one owner's state answerable by any worker.

    ``owner_key`` gets the view's URL parameters (match_info) as keyword arguments and returns the owner
    key; the decorated handler gets ``(view, request, partition, **params)`` and runs on the owner::

        @app.page("/groups/{group_id}/{week}")
        @owned_by(worker, lambda group_id, week: b"\\x00g\\x00" + group_id.encode())
        async def group_week(view, request, partition, group_id, week): ...
    """
    router = Router(worker)

    def decorate(local: LocalHandler) -> ViewHandler:
        @wraps(local)
        async def get(view: web.View, request: web.Request, **params: Any) -> web.Response:
            async def here(partition: int) -> web.Response:
                return await local(view, request, partition, **params)

            return await router.answer(view, request, owner_key(**params), here)

        return get

    return decorate


async def gather_all(worker: Worker, path: str) -> list[tuple[str, Any]]:
    """Ask every worker of the group, this one included, for a local-only ``path`` (Router.gather_all)."""
    return await Router(worker).gather_all(path)
