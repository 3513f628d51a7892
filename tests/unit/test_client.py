"""The query API client of ``stream explain`` and ``stream report``: URL, 404, 503 retries, unreachable."""

from __future__ import annotations

import io
import urllib.error
from email.message import Message
from typing import Any

import pytest

from stream.client import ApiError, Client, NotFound, Unavailable, Unreachable, api_url, local_url, segment
from stream.settings import Settings


def _settings(**env: str) -> Settings:
    return Settings(**env)  # type: ignore[arg-type]


def test_api_url_from_the_option_the_setting_or_the_local_worker() -> None:
    assert api_url(_settings()) == "http://127.0.0.1:6066"
    assert api_url(_settings(STREAM_WEB_PORT="7000", STREAM_WEB_HOST="0.0.0.0")) == "http://127.0.0.1:7000"
    assert local_url(_settings(STREAM_WEB_HOST="::")) == "http://127.0.0.1:6066"
    assert local_url(_settings(STREAM_WEB_HOST="::1")) == "http://[::1]:6066"
    assert local_url(_settings(STREAM_WEB_HOST="10.0.0.5")) == "http://10.0.0.5:6066"
    assert api_url(_settings(STREAM_API_URL="http://rewards:6066/")) == "http://rewards:6066"
    assert api_url(_settings(STREAM_API_URL="http://rewards:6066"), "http://other:1") == "http://other:1"


def test_segment_quotes_a_user_id_as_one_path_segment() -> None:
    assert segment("ann") == "ann"
    assert segment("a/b c?d") == "a%2Fb%20c%3Fd"


class _Response(io.BytesIO):
    status = 200

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _http_error(code: int, body: bytes, retry_after: str | None = None) -> urllib.error.HTTPError:
    headers = Message()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return urllib.error.HTTPError("http://x", code, "reason", headers, io.BytesIO(body))


class _Opener:
    """Answer each call with the next of ``answers``: bytes (200) or an exception to raise."""

    def __init__(self, *answers: bytes | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> Any:
        self.calls.append((url, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return _Response(answer)


def _client(opener: _Opener, sleeps: list[float] | None = None, attempts: int = 5) -> Client:
    return Client(
        "http://w:6066/",
        opener=opener,
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
        attempts=attempts,
        timeout=2.5,
    )


def test_a_200_answer_is_decoded() -> None:
    opener = _Opener(b'{"balance": 7}')
    assert _client(opener).get("/users/ann") == {"balance": 7}
    assert opener.calls == [("http://w:6066/users/ann", 2.5)]


def test_404_is_not_found_with_the_workers_message() -> None:
    opener = _Opener(_http_error(404, b'{"error": "unknown user \'zed\'"}'))
    with pytest.raises(NotFound, match="unknown user 'zed'"):
        _client(opener).get("/users/zed")
    assert len(opener.calls) == 1  # never retried


def test_503_is_retried_after_its_retry_after_then_answers() -> None:
    sleeps: list[float] = []
    opener = _Opener(
        _http_error(503, b'{"error": "rebalancing"}', "1"), _http_error(503, b"{}", "30"), b"[1]"
    )
    assert _client(opener, sleeps).get("/economy/2026-W47") == [1]
    assert sleeps == [1.0, 5.0]  # Retry-After, at most 5 s


def test_503_on_every_attempt_is_unavailable() -> None:
    sleeps: list[float] = []
    opener = _Opener(
        *(_http_error(503, b'{"error": "partitions answered [0], not all 4"}') for _ in range(3))
    )
    with pytest.raises(Unavailable, match=r"after 3 attempts: partitions answered \[0\], not all 4"):
        _client(opener, sleeps, attempts=3).get("/economy/2026-W47")
    assert len(opener.calls) == 3
    assert len(sleeps) == 2


def test_connection_refused_names_the_url() -> None:
    opener = _Opener(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")))
    with pytest.raises(Unreachable) as caught:
        _client(opener).get("/users/ann")
    message = str(caught.value)
    assert "http://w:6066/users/ann" in message
    assert "connection refused" in message
    assert "STREAM_API_URL" in message


def test_a_time_out_is_unreachable() -> None:
    with pytest.raises(Unreachable, match=r"no answer within 2\.5 s"):
        _client(_Opener(urllib.error.URLError(TimeoutError()))).get("/users/ann")
    with pytest.raises(Unreachable, match=r"no answer within 2\.5 s"):
        _client(_Opener(TimeoutError("timed out"))).get("/users/ann")


def test_another_status_or_a_body_that_is_not_json_is_an_api_error() -> None:
    with pytest.raises(ApiError, match="answered 400: week 'x' is not an ISO week"):
        _client(_Opener(_http_error(400, b'{"error": "week \'x\' is not an ISO week"}'))).get("/economy/x")
    with pytest.raises(ApiError, match="answered 500: Internal Server Error"):
        _client(_Opener(_http_error(500, b"Internal Server Error"))).get("/users/ann")
    with pytest.raises(ApiError, match="not JSON"):
        _client(_Opener(b"<html>")).get("/users/ann")
