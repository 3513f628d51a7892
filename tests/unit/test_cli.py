"""The command line: help lists every setting, an invalid rules file stops the worker naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.settings import Settings

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
