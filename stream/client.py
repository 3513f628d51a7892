"""Ask a worker's query API over HTTP: the client side of ``stream explain`` and ``stream report``.

Any worker answers for any key (stream/runtime/routing.py), so one URL is enough: ``STREAM_API_URL``, or
``http://STREAM_WEB_HOST:STREAM_WEB_PORT`` (``127.0.0.1`` when the worker binds every address). Standard
library only (urllib): the commands run anywhere the package is installed, without an event loop.

- 404 (an unknown user, group, board...): ``NotFound`` with the worker's message;
- 503 (the owner of the key is moving or recovering): retried after its ``Retry-After`` (at most 5 s),
  ``attempts`` times in all, then ``Unavailable``;
- connection refused, a name that does not resolve, a time-out: ``Unreachable``, naming the URL;
- any other status: ``ApiError`` with the worker's message.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson

from stream.settings import Settings

ATTEMPTS = 5
TIMEOUT_S = 10.0
MAX_RETRY_AFTER_S = 5.0
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


class ApiError(Exception):
    """The query API did not give the answer asked for; the message says why, for a person to read."""


class NotFound(ApiError):
    """404: the API knows no such user (or group, team, board, week)."""


class Unavailable(ApiError):
    """503 still after every attempt: the worker cannot answer now (rebalancing, recovering)."""


class Unreachable(ApiError):
    """No HTTP answer at all: connection refused, unknown host, time-out."""


def local_url(settings: Settings) -> str:
    """Return the URL of this machine's worker: ``http://STREAM_WEB_HOST:STREAM_WEB_PORT`` (127.0.0.1 for 0.0.0.0, ::)."""
    host = settings.web_host.strip()
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{settings.web_port}"


def api_url(settings: Settings, explicit: str | None = None) -> str:
    """Return the query API's base URL: ``explicit`` (``--api``), else ``STREAM_API_URL``, else ``local_url``."""
    return (explicit or settings.api_url or local_url(settings)).rstrip("/")


def segment(value: str) -> str:
    """Return ``value`` quoted as one path segment (a user id may hold ``/``, ``?`` or spaces)."""
    return quote(value, safe="")


Opener = Callable[..., Any]


class Client:
    """GET JSON from one query API URL, with the retries and messages described above."""

    def __init__(
        self,
        base_url: str,
        *,
        attempts: int = ATTEMPTS,
        timeout: float = TIMEOUT_S,
        opener: Opener = urllib.request.urlopen,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self._open = opener
        self._sleep = sleep

    def get_bytes(self, path: str) -> bytes:
        """Return the body of a 200 answer to ``GET path``; raise an ``ApiError`` otherwise."""
        url = self.base_url + path
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                with self._open(url, timeout=self.timeout) as response:
                    body: bytes = response.read()
                    return body
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code == 404:
                    raise NotFound(message) from None
                if exc.code != 503:
                    raise ApiError(f"{url} answered {exc.code}: {message}") from None
                last = message
                if attempt < self.attempts:
                    self._sleep(_retry_after(exc))
            except urllib.error.URLError as exc:
                raise Unreachable(_unreachable(url, exc.reason, self.timeout)) from None
            except OSError as exc:  # a time-out while reading, a reset connection
                raise Unreachable(_unreachable(url, exc, self.timeout)) from None
        raise Unavailable(
            f"{url} is unavailable (503) after {self.attempts} attempts: {last or 'no reason given'}; "
            "the workers may be rebalancing or recovering, try again shortly"
        )

    def get(self, path: str) -> Any:
        """Return the decoded JSON of a 200 answer to ``GET path``."""
        body = self.get_bytes(path)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ApiError(f"{self.base_url + path} answered something that is not JSON") from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    """Return the ``error`` of a JSON error body, else the body's start, else the HTTP reason."""
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    try:
        body = orjson.loads(raw)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])
    except orjson.JSONDecodeError:
        pass
    text = raw.decode("utf-8", "replace").strip()
    return text[:200] if text else str(exc.reason)


def _retry_after(exc: urllib.error.HTTPError) -> float:
    try:
        seconds = float(exc.headers.get("Retry-After", "1"))
    except (TypeError, ValueError):
        seconds = 1.0
    return min(max(seconds, 0.1), MAX_RETRY_AFTER_S)


def _unreachable(url: str, reason: object, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        why = "connection refused (is a worker running there?)"
    elif isinstance(reason, TimeoutError):
        why = f"no answer within {timeout:g} s"
    elif isinstance(reason, socket.gaierror):
        why = f"unknown host ({reason.strerror})"
    else:
        why = str(reason)
    return f"cannot reach the query API at {url}: {why}; set STREAM_API_URL or --api to a worker's URL"
