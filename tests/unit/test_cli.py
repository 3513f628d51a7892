"""The command line: help lists every setting, an invalid rules file stops the worker naming the field,
``stream explain``, ``stream report economy|invites`` and ``stream invites pending`` against a fake query
API, and ``stream invites approve|reject`` refusing an invitee that does not wait (sending one is tested
against the real broker in tests/e2e/test_invites_cli.py)."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.cli import main
from stream.report import last_week
from stream.settings import Settings
from tests.unit import api_examples

ROOT = Path(__file__).resolve().parents[2]


def _stream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream", *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


def test_help_names_every_setting() -> None:
    result = _stream("--help")
    assert result.returncode == 0
    for field in Settings.model_fields.values():
        assert field.alias in result.stdout


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for field in Settings.model_fields.values():
        assert f"`{field.alias}`" in readme


@pytest.mark.parametrize(
    ("original", "broken", "field"),
    [
        (
            "like_given:      {fact: like, points: 1, cap: {day: 10}",
            "like_given:      {fact: like, points: 1, cap: {day: -3}",
            "rules.like_given.cap",
        ),
        (
            "  vote:            {fact: vote, points: 8",
            "  vote:            {fact: vote, ponits: 9, points: 8",
            "rules.vote.ponits",
        ),
    ],
)
def test_invalid_rules_file_stops_the_worker_naming_the_field(
    tmp_path: Path, original: str, broken: str, field: str
) -> None:
    rules = tmp_path / "rules.yaml"
    text = (ROOT / "stream" / "rules" / "default.yaml").read_text()
    assert original in text
    rules.write_text(text.replace(original, broken))
    # No broker is needed: the rules are checked before anything connects.
    env = {"PATH": "/usr/bin:/bin", "STREAM_RULES_FILE": str(rules), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = _stream("worker", env=env)
    assert result.returncode != 0
    assert field in result.stderr


# --- stream explain and stream report economy against a fake query API ------------------------------------


class _FakeApi(http.server.ThreadingHTTPServer):
    """Answer the paths in ``answers`` (status, JSON); 404 with a JSON error for any other; log the paths."""

    def __init__(self, answers: dict[str, tuple[int, object]]) -> None:
        self.answers = answers
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _FakeApi

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        status, body = self.server.answers.get(self.path, (404, {"error": f"unknown {self.path}"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[_FakeApi]:
    server = _FakeApi(
        {
            "/users/u000172": (200, api_examples.USER),
            "/users/u000172/ledger?limit=4": (200, api_examples.LEDGER),
            "/rules": (200, api_examples.RULES),
            "/economy/2026-W47": (200, api_examples.ECONOMY),
            "/economy/2026-W46": (503, {"error": "partitions answered [0], not all 4: rebalancing, retry"}),
            "/invites/pending": (200, api_examples.INVITES_PENDING),
            "/invites/funnel?from=2026-11-16&to=2026-11-22": (200, api_examples.INVITES_FUNNEL),
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_prints_the_explanation(fake_api: _FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["explain", "u000172", "--limit", "4", "--api", fake_api.url], capsys)
    assert code == 0
    assert out.startswith("User u000172 (team t029): balance 778 points")
    assert "2 thanks cards sent to oneself counted for nothing" in out
    assert fake_api.paths == ["/users/u000172", "/users/u000172/ledger?limit=4", "/rules"]


def test_explain_reads_the_url_from_stream_api_url(
    fake_api: _FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_API_URL", fake_api.url)
    code, out, _ = _run(["explain", "u000172", "--limit", "4", "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {"user": api_examples.USER, "ledger": api_examples.LEDGER}


def test_explain_of_an_unknown_user_exits_1(fake_api: _FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["explain", "nobody/else", "--api", fake_api.url], capsys)
    assert code == 1
    assert out == ""
    assert err == f"stream explain: unknown /users/nobody%2Felse (asked {fake_api.url})\n"


def test_explain_without_a_worker_exits_3_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the test asks: connection refused
    code, _, err = _run(["explain", "ann", "--api", f"http://127.0.0.1:{port}"], capsys)
    assert code == 3
    assert f"cannot reach the query API at http://127.0.0.1:{port}/users/ann: connection refused" in err


def test_report_economy_prints_the_report_or_the_raw_json(
    fake_api: _FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["report", "economy", "--week", "2026-W47", "--api", fake_api.url], capsys)
    assert code == 0
    assert out.startswith("Economy of 2026-W47\n")
    assert "  best_collaborating_group: winner g00251" in out
    code, out, _ = _run(["report", "economy", "--week", "2026-W47", "--json", "--api", fake_api.url], capsys)
    assert code == 0
    assert json.loads(out) == api_examples.ECONOMY


def test_report_economy_unavailable_after_retries_exits_3(
    fake_api: _FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["report", "economy", "--week", "2026-W46", "--api", fake_api.url], capsys)
    assert code == 3
    assert "unavailable (503) after 5 attempts: partitions answered [0], not all 4" in err
    assert fake_api.paths == ["/economy/2026-W46"] * 5


def test_report_economy_refuses_a_week_that_is_not_an_iso_week(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["report", "economy", "--week", "2026-48"], capsys)
    assert code == 2
    assert "'2026-48' is not an ISO week like 2026-W48" in err


def test_report_economy_defaults_to_last_week(fake_api: _FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    _run(["report", "economy", "--api", fake_api.url], capsys)
    assert fake_api.paths == [f"/economy/{last_week(int(time.time() * 1000), Settings().timezone)}"]


# --- stream report invites, stream invites pending|approve|reject -------------------------------------------


def test_help_lists_the_invitation_commands() -> None:
    result = _stream("--help")
    for line in ("report invites [--from D] [--to D]", "invites pending", "invites approve|reject INVITEE"):
        assert line in result.stdout


def test_report_invites_prints_the_funnel_or_the_raw_json(
    fake_api: _FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", "invites", "--from", "2026-11-16", "--to", "2026-11-22", "--api", fake_api.url]
    code, out, _ = _run(argv, capsys)
    assert code == 0
    assert out.startswith("Invitation funnel of the registrations of 2026-11-16 .. 2026-11-22")
    assert "  total " in out
    code, out, _ = _run([*argv, "--json"], capsys)
    assert code == 0
    assert json.loads(out) == api_examples.INVITES_FUNNEL
    assert fake_api.paths == ["/invites/funnel?from=2026-11-16&to=2026-11-22"] * 2


def test_report_invites_refuses_bad_days(fake_api: _FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["report", "invites", "--from", "2026-11-31", "--api", fake_api.url], capsys)
    assert code == 2
    assert "'2026-11-31' is not a date like 2026-11-23" in err
    argv = ["report", "invites", "--from", "2026-11-22", "--to", "2026-11-16", "--api", fake_api.url]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err == "stream report invites: --from 2026-11-22 is after --to 2026-11-16\n"
    assert fake_api.paths == []


def test_invites_pending_prints_the_table_or_the_raw_json(
    fake_api: _FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_TIMEZONE", "UTC")
    code, out, _ = _run(["invites", "pending", "--api", fake_api.url], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("2 invitations waiting for an operator, 1,290 points promised")
    assert out.splitlines()[2].split()[:5] == ["u000913", "u000172", "poster", "2026-11-22", "19:00:00"]
    code, out, _ = _run(["invites", "pending", "--json", "--api", fake_api.url], capsys)
    assert json.loads(out) == api_examples.INVITES_PENDING


def test_invites_pending_without_a_worker_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["invites", "pending", "--api", "http://127.0.0.1:1"], capsys)
    assert code == 3
    assert "cannot reach the query API at http://127.0.0.1:1/invites/pending" in err


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_for_an_invitee_that_does_not_wait_is_refused_before_kafka(
    fake_api: _FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, decision: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens: Kafka is never asked
    started = time.monotonic()
    code, out, err = _run(["invites", decision, "u000999", "--api", fake_api.url], capsys)
    assert code == 1 and out == ""
    assert err == (
        f"stream invites {decision}: 'u000999' is not waiting for an operator "
        f"(not in {fake_api.url}/invites/pending); nothing sent (--force sends it anyway)\n"
    )
    assert fake_api.paths == ["/invites/pending"]
    assert time.monotonic() - started < 5


def test_a_decision_needs_an_invitee_id_of_the_schemas_length(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["invites", "approve", "x" * 257], capsys)
    assert code == 2 and "an id is 1 to 256 characters" in err
    code, _, err = _run(["invites", "reject", "u1", "--operator", ""], capsys)
    assert code == 2 and "an id is 1 to 256 characters" in err
