"""Unit tests of stream.rules.model: the bundled defaults and every way a rules file can be wrong."""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from stream.rules import BASE_RULES, Rules, RulesError, load_rules
from stream.rules.model import parse_rules

DEFAULT_TEXT = resources.files("stream.rules").joinpath("default.yaml").read_text(encoding="utf-8")
DEFAULT_DOC: dict[str, Any] = yaml.safe_load(DEFAULT_TEXT)


def variant(change: Callable[[dict[str, Any]], object]) -> str:
    """Return the default rules as YAML text after ``change`` edited a copy of them."""
    doc = copy.deepcopy(DEFAULT_DOC)
    change(doc)
    return yaml.safe_dump(doc, sort_keys=False)


def _walk(doc: Any, path: str) -> tuple[Any, str | int]:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc, (int(last) if isinstance(doc, list) else last)


def put(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Return an edit that sets the dotted ``path`` (list indexes as numbers) to ``value``."""

    def change(doc: dict[str, Any]) -> None:
        parent, key = _walk(doc, path)
        parent[key] = value

    return change


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    """Return an edit that removes the dotted ``path``."""

    def change(doc: dict[str, Any]) -> None:
        parent, key = _walk(doc, path)
        del parent[key]

    return change


def error_of(text: str, source: str = "<string>") -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(text, source)
    return str(info.value)


# --- the bundled defaults -----------------------------------------------------------------------


def test_bundled_defaults_load() -> None:
    rules = load_rules()
    assert isinstance(rules, Rules)
    assert rules.version == "2026-11-23.1"
    assert rules.time.retention_days == 35
    assert rules.time.max_future_minutes == 60
    assert rules.anti_gaming.like_pair_daily_limit == 5


def test_bundled_base_rule_points() -> None:
    rules = load_rules().rules
    assert set(rules) == set(BASE_RULES)
    assert {name: rule.points for name, rule in rules.items()} == {
        "daily_login": 5,
        "message_text": 2,
        "message_voice": 5,
        "message_video": 5,
        "message_file": 10,
        "message_image": 10,
        "reply": 3,
        "vote": 8,
        "group_created": 15,
        "like_given": 1,
        "thanks_received": 20,
        "quality_bonus": 10,
    }
    assert {name: rule.daily_cap for name, rule in rules.items() if rule.daily_cap is not None} == {
        "like_given": 10
    }
    assert rules["group_created"].min_invited == 1
    assert all(rule.enabled for rule in rules.values())


def test_bundled_thresholds_and_levels() -> None:
    rules = load_rules()
    assert list(rules.thresholds) == ["weekly_active_100"]
    weekly = rules.thresholds["weekly_active_100"]
    assert (weekly.counter, weekly.period, weekly.threshold, weekly.points) == ("messages", "week", 100, 100)
    assert [(level.name, level.min_points) for level in rules.levels] == [
        ("newcomer", 0),
        ("communicator", 1000),
        ("team_star", 5000),
    ]


def test_load_rules_from_a_file_equals_the_bundled_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(DEFAULT_TEXT, encoding="utf-8")
    assert load_rules(path) == load_rules()


def test_defaults_apply_to_optional_sections() -> None:
    text = variant(lambda d: [d.pop("time"), d.pop("anti_gaming"), d.pop("thresholds")])
    rules = parse_rules(text)
    assert rules.time.retention_days == 35
    assert rules.time.max_future_minutes == 60
    assert rules.anti_gaming.like_pair_daily_limit == 5
    assert rules.thresholds == {}


def test_rules_are_frozen() -> None:
    rules = load_rules()
    with pytest.raises(pydantic.ValidationError):
        rules.version = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        rules.rules["vote"].points = 100  # type: ignore[misc]


def test_rules_error_is_a_value_error() -> None:
    assert issubclass(RulesError, ValueError)


# --- invalid files: the message names the offending field ---------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "extra",
        "rules.like_given.dailycap",
        "time.retention",
        "anti_gaming.like_limit",
        "thresholds.weekly_active_100.bonus",
        "levels.1.icon",
    ],
)
def test_unknown_field_is_rejected(field: str) -> None:
    message = error_of(variant(put(field, 3)))
    assert f"\n  {field}: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rules.message_text.points", -1),
        ("rules.like_given.daily_cap", -1),
        ("rules.group_created.min_invited", -1),
        ("anti_gaming.like_pair_daily_limit", -1),
        ("time.retention_days", 0),
        ("time.retention_days", 367),
        ("time.max_future_minutes", -5),
        ("thresholds.weekly_active_100.threshold", 0),
        ("thresholds.weekly_active_100.points", -100),
        ("levels.1.min_points", -1),
    ],
)
def test_negative_or_out_of_range_number_is_rejected(field: str, value: int) -> None:
    message = error_of(variant(put(field, value)))
    assert f"\n  {field}: Input should be" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rules.message_text.points", "two"),
        ("rules.message_text.points", 2.5),
        ("rules.message_text.points", [2]),
        ("rules.message_text", None),
        ("rules.message_text.enabled", "maybe"),
        ("thresholds.weekly_active_100.counter", "likes"),
        ("thresholds.weekly_active_100.period", "year"),
        ("version", ""),
        ("version", 2026.1),
        ("levels.1.name", ""),
        ("levels", {"newcomer": 0}),
        ("rules", ["vote"]),
    ],
)
def test_wrong_type_or_value_is_rejected(field: str, value: object) -> None:
    message = error_of(variant(put(field, value)))
    assert f"\n  {field}: " in message


@pytest.mark.parametrize(
    "field", ["version", "rules", "levels", "rules.message_text.points", "levels.1.name"]
)
def test_missing_required_field_is_rejected(field: str) -> None:
    message = error_of(variant(drop(field)))
    assert f"\n  {field}: Field required" in message


def test_unquoted_date_version_is_rejected() -> None:
    message = error_of(DEFAULT_TEXT.replace('version: "2026-11-23.1"', "version: 2026-11-23"))
    assert "version: Input should be a valid string" in message


def test_boolean_is_not_a_number_of_points() -> None:
    """``daily_cap: no`` is YAML for False; it must not silently become a cap of 0 points."""
    message = error_of(variant(put("rules.like_given.daily_cap", False)))
    assert "rules.like_given.daily_cap" in message
    message = error_of(variant(put("rules.message_text.points", True)))
    assert "rules.message_text.points" in message


def test_missing_base_rule_is_rejected() -> None:
    message = error_of(variant(drop("rules.vote")))
    assert "rules: missing rule 'vote'" in message


def test_unknown_base_rule_is_rejected() -> None:
    message = error_of(variant(put("rules.votes", {"points": 8})))
    assert "rules: unknown rule 'votes'" in message


def test_disabled_rule_is_accepted() -> None:
    rules = parse_rules(variant(put("rules.vote.enabled", False)))
    assert rules.rules["vote"].enabled is False


def test_unordered_levels_are_rejected() -> None:
    def swap(d: dict[str, Any]) -> None:
        d["levels"][1]["min_points"], d["levels"][2]["min_points"] = 5000, 1000

    message = error_of(variant(swap))
    assert "levels: 'team_star' must need more points than 'communicator'" in message


def test_levels_with_equal_thresholds_are_rejected() -> None:
    message = error_of(variant(put("levels.2.min_points", 1000)))
    assert "levels: 'team_star' must need more points than 'communicator'" in message


def test_first_level_must_start_at_zero() -> None:
    message = error_of(variant(put("levels.0.min_points", 10)))
    assert "levels: the first level must start at min_points 0" in message


def test_no_levels_is_rejected() -> None:
    message = error_of(variant(put("levels", [])))
    assert "levels:" in message


def test_duplicate_level_names_are_rejected() -> None:
    message = error_of(variant(put("levels.2.name", "communicator")))
    assert "levels: level names must be unique" in message


def test_invalid_yaml_is_rejected() -> None:
    message = error_of("version: [unclosed\nrules: {", "bad.yaml")
    assert message.startswith("invalid rules file bad.yaml: not valid YAML")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    assert "the top level must be a mapping" in error_of(text)


def test_error_names_the_source_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(variant(put("rules.like_given.daily_cap", -1)), encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"invalid rules file {path}:")
    assert "rules.like_given.daily_cap" in str(info.value)


def test_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"cannot read rules file {path}")


def test_every_error_is_listed() -> None:
    def two_errors(d: dict[str, Any]) -> None:
        d["rules"]["vote"]["points"] = -8
        d["time"]["retention_days"] = 0

    message = error_of(variant(two_errors))
    assert "rules.vote.points" in message
    assert "time.retention_days" in message
