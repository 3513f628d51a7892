"""Unit tests of the ``stream rules`` commands that need no broker, and of the rules topic's records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stream.cli import main
from stream.rules.model import RulesError, default_rules_text
from stream.runtime import rules_cli
from stream.runtime.rules_topic import Published, add_published
from stream.settings import Settings


def _write(tmp_path: Path, change: dict[str, object] | None = None, name: str = "rules.yaml") -> Path:
    doc = yaml.safe_load(default_rules_text())
    doc.update(change or {})
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_check_prints_the_version_and_what_the_defaults_allow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path)
    main(["rules", "check", str(path)])
    out = capsys.readouterr().out
    assert "valid. version 2026-11-23.1" in out
    # SPEC's base rules have no cap except like_given: the file allows unbounded points, and says which rules
    assert "UNBOUNDED" in out
    assert "message_text" in out and "like_given," not in out
    # capped and once-per-period rules alone: a day = like_given 10 + daily_login 5 + 3 daily tasks x 5
    # (= 30) + every weekly threshold (weekly_active_100 100 + 3 weekly tasks x 30 = 190) -> 220;
    # a week = 7 x 30 + 190 = 400; achievements 3 x 50 = 150 once
    assert "at most 220 points in a day, 400 in a week" in out
    assert "650 points from monthly and lifetime thresholds" in out  # + the team challenge 500


def test_check_of_a_capped_file_gives_exact_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(default_rules_text())
    for name, rule in doc["rules"].items():
        if "fact" in rule and name != "like_given":
            rule["enabled"] = False
    doc["rules"]["message_text"] = {
        "fact": "message",
        "where": {"kind": "text"},
        "points": 2,
        "cap": {"day": 20, "week": 100},
    }
    path = tmp_path / "capped.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    main(["rules", "check", str(path)])
    out = capsys.readouterr().out
    assert "UNBOUNDED" not in out
    # a day: message_text 20 + like_given 10 + daily thresholds (daily_login 5 + 3 tasks x 5 = 20) + 190 weekly
    # thresholds = 240
    # a week: message_text min(7 x 20, 100) = 100 + like_given 70 + daily thresholds 7 x 20 = 140 + 190 = 500
    assert "most points one user can earn: 240 in a day, 500 in a week" in out


def test_check_of_an_invalid_file_names_the_field_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(default_rules_text())
    doc["rules"]["daily_messages"]["threshold"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["rules", "check", str(path)])
    assert info.value.code == 1
    assert "rules.daily_messages.threshold" in capsys.readouterr().err


def test_help_names_the_three_rules_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("rules check FILE", "rules publish FILE", "rules show"):
        assert command in out


def test_publish_refuses_an_effective_from_in_the_past_without_touching_kafka(tmp_path: Path) -> None:
    path = _write(tmp_path, {"version": "v-past", "effective_from": "2021-01-01T00:00:00"})
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")  # unreachable: the refusal comes first
    with pytest.raises(RulesError, match="earlier than now") as info:
        rules_cli.publish_file(path, settings, force=False)
    assert "--force" in str(info.value)


def test_published_records_round_trip_and_invalid_ones_are_skipped(tmp_path: Path) -> None:
    settings = Settings()
    book = (
        rules_cli.startup_book.__wrapped__(settings)
        if hasattr(rules_cli.startup_book, "__wrapped__")
        else None
    )
    del book
    compiled, text = rules_cli.compile_file(None, settings)
    from zoneinfo import ZoneInfo

    from stream.rules.versions import RuleBook

    book = RuleBook(ZoneInfo(settings.timezone), compiled)
    newer = _write(tmp_path, {"version": "v2", "effective_from": 1_900_000_000_000}).read_text(
        encoding="utf-8"
    )
    good = Published.decode(Published("v2", 1_900_000_000_000, 1, newer).encode())
    bad = Published("v3", 0, 1, "version: v3\nrules: {}\n")  # invalid: no levels
    assert add_published(book, [good, bad]) == ["v2"]
    assert [v.version for v in book.versions] == ["2026-11-23.1", "v2"]
    assert book.at(1_900_000_000_000 - 1).version == "2026-11-23.1"
    assert book.at(1_900_000_000_000).version == "v2"
    assert add_published(book, [good]) == []  # the same content again changes nothing
    assert text == default_rules_text()
