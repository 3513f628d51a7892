"""The rule language's model (stream.rules.model): every kind of mistake names its field; the bundled defaults."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pydantic
import pytest

from stream.rules import Rules, RulesError, load_rules
from stream.rules.model import default_rules_text, parse_rules
from tests.unit.support import rules_text

LOGIN_RULE = "rules:\n  r: {fact: login, points: 1}\n"
WINDOW = "start: '2026-12-01T00:00', end: '2026-12-08T00:00'"


def error_of(body: str, source: str = "<string>") -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(rules_text(body), source)
    return str(info.value)


def line_of(message: str, path: str) -> str:
    """Return the line of an error message about ``path`` (the path is the line's start)."""
    for line in message.splitlines():
        if line.strip().startswith(path + ":"):
            return line.strip()
    raise AssertionError(f"no line about {path!r} in:\n{message}")


# --- every kind of mistake, with the path of its field -------------------------------------------

MISTAKES = {
    "unknown fact in a counter": (
        "counters:\n  c: {fact: nope, per: day}\n" + LOGIN_RULE,
        "counters.c.fact",
        "unknown fact 'nope'",
    ),
    "unknown fact in a rule": (
        "rules:\n  r: {fact: nope, points: 1}\n",
        "rules.r.fact",
        "unknown fact 'nope'",
    ),
    "unknown field in where": (
        "rules:\n  r: {fact: message, where: {colour: red}, points: 1}\n",
        "rules.r.where",
        "fact 'message' has no field 'colour'",
    ),
    "unknown field in a counter's where": (
        "counters:\n  c: {fact: like, where: {kind: text}, per: day}\n" + LOGIN_RULE,
        "counters.c.where",
        "fact 'like' has no field 'kind'",
    ),
    "unknown field in distinct": (
        "counters:\n  c: {fact: login, per: week, distinct: group_id}\n" + LOGIN_RULE,
        "counters.c.distinct",
        "fact 'login' has no field 'group_id'",
    ),
    "receiver target on a counter of a fact without one": (
        "counters:\n  c: {fact: message, receiver: target, per: day}\n" + LOGIN_RULE,
        "counters.c.receiver",
        "fact 'message' has no target user",
    ),
    "receiver target on a rule of a fact without one": (
        "rules:\n  r: {fact: vote, receiver: target, points: 1}\n",
        "rules.r.receiver",
        "fact 'vote' has no target user",
    ),
    "counter without per": (
        "counters:\n  c: {fact: login}\n" + LOGIN_RULE,
        "counters.c.per",
        "required",
    ),
    "counter with an unknown period": (
        "counters:\n  c: {fact: login, per: year}\n" + LOGIN_RULE,
        "counters.c.per",
        "'year' is not one of day, week, month, lifetime, campaign:NAME",
    ),
    "streak with per": (
        "counters:\n  c: {fact: login, streak: true, per: day}\n" + LOGIN_RULE,
        "counters.c",
        "a streak counts consecutive days: it takes no 'per'",
    ),
    "streak with distinct": (
        "counters:\n  c: {fact: message, streak: true, distinct: group_id}\n" + LOGIN_RULE,
        "counters.c",
        "no 'distinct'",
    ),
    "rule with both fact and counter": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {fact: login, counter: c, threshold: 1, points: 1}\n",
        "rules.r",
        "give either 'fact' (points per fact) or 'counter' with 'threshold'",
    ),
    "rule with neither fact nor counter": (
        "rules:\n  r: {points: 1}\n",
        "rules.r",
        "give either 'fact'",
    ),
    "threshold without counter": (
        "rules:\n  r: {fact: login, threshold: 3, points: 1}\n",
        "rules.r.threshold",
        "only a rule on a counter takes it",
    ),
    "badge without counter": (
        "rules:\n  r: {fact: login, badge: task, points: 1}\n",
        "rules.r.badge",
        "only a rule on a counter takes it",
    ),
    "counter without threshold": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {counter: c, points: 1}\n",
        "rules.r.threshold",
        "required with 'counter'",
    ),
    "where on a counter rule": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {counter: c, threshold: 1, points: 1, where: {kind: text}}\n",
        "rules.r.where",
        "filter in the counter",
    ),
    "cap on a counter rule": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {counter: c, threshold: 1, points: 1, cap: {day: 3}}\n",
        "rules.r.cap",
        "filter in the counter",
    ),
    "receiver on a counter rule": (
        "counters:\n  c: {fact: like, per: day}\nrules:\n  r: {counter: c, threshold: 1, points: 1, receiver: target}\n",
        "rules.r.receiver",
        "set it in the counter",
    ),
    "per on a rule of a non-streak counter": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {counter: c, threshold: 1, per: week, points: 1}\n",
        "rules.r.per",
        "the counter's own period (day) is the rule's",
    ),
    "streak rule without per": (
        "counters:\n  c: {fact: login, streak: true}\nrules:\n  r: {counter: c, threshold: 5, points: 1}\n",
        "rules.r.per",
        "a rule on a streak needs the period it pays once in",
    ),
    "unknown counter": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {counter: x, threshold: 5, points: 1}\n",
        "rules.r.counter",
        "unknown counter 'x' (known: c)",
    ),
    "unknown campaign in a counter's per": (
        "counters:\n  c: {fact: login, per: 'campaign:x'}\n" + LOGIN_RULE,
        "counters.c.per",
        "unknown campaign 'x'",
    ),
    "unknown rule in a campaign": (
        LOGIN_RULE + f"campaigns:\n  k: {{rules: [nope], multiplier: 2, {WINDOW}}}\n",
        "campaigns.k.rules",
        "unknown rule 'nope'",
    ),
    "campaign with no rules": (
        LOGIN_RULE + f"campaigns:\n  k: {{rules: [], multiplier: 2, {WINDOW}}}\n",
        "campaigns.k.rules",
        "at least 1 item",
    ),
    "campaign end before start": (
        LOGIN_RULE
        + "campaigns:\n  k: {rules: [r], multiplier: 2, start: '2026-12-02T00:00', end: '2026-12-01T00:00'}\n",
        "campaigns.k.end",
        "must be after start",
    ),
    "campaign end at start": (
        LOGIN_RULE
        + "campaigns:\n  k: {rules: [r], multiplier: 2, start: '2026-12-02T00:00', end: '2026-12-02T00:00'}\n",
        "campaigns.k.end",
        "must be after start",
    ),
    "campaign multiplier of zero": (
        LOGIN_RULE + f"campaigns:\n  k: {{rules: [r], multiplier: 0, {WINDOW}}}\n",
        "campaigns.k.multiplier",
        "greater than 0",
    ),
    "bad rule name": (
        "rules:\n  9r: {fact: login, points: 1}\n",
        "rules.9r",
        "a name is a letter, then letters, digits",
    ),
    "bad counter name": (
        "counters:\n  _c: {fact: login, per: day}\n" + LOGIN_RULE,
        "counters._c",
        "a name is a letter",
    ),
    "bad campaign name": (
        LOGIN_RULE + f"campaigns:\n  'double voice': {{rules: [r], multiplier: 2, {WINDOW}}}\n",
        "campaigns.double voice",
        "a name is a letter",
    ),
    "duplicate badge names": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n"
        "  a: {counter: c, threshold: 1, badge: {kind: task, name: x}}\n  x: {counter: c, threshold: 2, badge: task}\n",
        "rules",
        "badge 'x' is awarded by more than one rule",
    ),
    "levels out of order": (
        LOGIN_RULE
        + "levels:\n  - {name: a, min_points: 0}\n  - {name: b, min_points: 10}\n  - {name: c, min_points: 5}\n",
        "levels",
        "'c' must need more points than 'b'",
    ),
    "levels with equal points": (
        LOGIN_RULE + "levels:\n  - {name: a, min_points: 0}\n  - {name: b, min_points: 0}\n",
        "levels",
        "'b' must need more points than 'a'",
    ),
    "first level above zero": (
        LOGIN_RULE + "levels:\n  - {name: a, min_points: 3}\n",
        "levels",
        "the first level must start at min_points 0",
    ),
    "no levels": (LOGIN_RULE + "levels: []\n", "levels", "the first level must start at min_points 0"),
    "duplicate level names": (
        LOGIN_RULE + "levels:\n  - {name: a, min_points: 0}\n  - {name: a, min_points: 5}\n",
        "levels",
        "level names must be unique",
    ),
    "unknown top-level field": ("colour: red\n" + LOGIN_RULE, "colour", "Extra inputs are not permitted"),
    "unknown rule field": (
        "rules:\n  r: {fact: login, points: 1, tresh: 3}\n",
        "rules.r.tresh",
        "Extra inputs are not permitted",
    ),
    "unknown counter field": (
        "counters:\n  c: {fact: login, per: day, every: 2}\n" + LOGIN_RULE,
        "counters.c.every",
        "Extra inputs are not permitted",
    ),
    "a rule that pays nothing": (
        "rules:\n  r: {fact: login}\n",
        "rules.r.points",
        "a rule must pay points, a badge or both",
    ),
    "negative points": (
        "rules:\n  r: {fact: login, points: -1}\n",
        "rules.r.points",
        "greater than or equal to 0",
    ),
    "points as a string": ("rules:\n  r: {fact: login, points: '5'}\n", "rules.r.points", "valid integer"),
    "a bool as points": ("rules:\n  r: {fact: login, points: true}\n", "rules.r.points", "valid integer"),
    "negative cap": ("rules:\n  r: {fact: login, points: 1, cap: {day: -3}}\n", "rules.r.cap.day", ">= 0"),
    "cap period unknown": (
        "rules:\n  r: {fact: login, points: 1, cap: {year: 3}}\n",
        "rules.r.cap.year",
        "'day'",
    ),
    "zero threshold": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {counter: c, threshold: 0, points: 1}\n",
        "rules.r.threshold",
        "greater than or equal to 1",
    ),
    "unknown badge kind": (
        "counters:\n  c: {fact: login, per: day}\nrules:\n  r: {counter: c, threshold: 1, badge: medal}\n",
        "rules.r.badge.kind",
        "'task' or 'achievement'",
    ),
    "retention out of range": (
        "time: {retention_days: 0}\n" + LOGIN_RULE,
        "time.retention_days",
        "greater than or equal to 1",
    ),
}


@pytest.mark.parametrize(("body", "path", "words"), MISTAKES.values(), ids=list(MISTAKES))
def test_mistake_names_its_field(body: str, path: str, words: str) -> None:
    message = error_of(body)
    assert message.startswith("invalid rules file <string>:")
    line = line_of(message, path)
    assert words in line, line
    assert "(top level)" not in message


def test_error_path_with_a_name_that_has_a_dash_or_a_dot() -> None:
    message = error_of("rules:\n  my-rule.v2: {counter: x, threshold: 5, points: 1}\n")
    assert line_of(message, "rules.my-rule.v2.counter") == (
        "rules.my-rule.v2.counter: unknown counter 'x' (known: none)"
    )


def test_rule_threshold_message_is_exact() -> None:
    message = error_of(
        "counters:\n  c: {fact: login, per: day}\nrules:\n  daily_messages: {counter: c, points: 1}\n"
    )
    assert (
        message == "invalid rules file <string>:\n  rules.daily_messages.threshold: required with 'counter'"
    )


def test_yaml_syntax_error() -> None:
    with pytest.raises(RulesError) as info:
        parse_rules("version: '1'\nrules:\n  r: {fact: login, points: 1\nlevels: []\n", "bad.yaml")
    message = str(info.value)
    assert message.startswith("invalid rules file bad.yaml: not valid YAML:")
    assert "line 3" in message or "line 4" in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(RulesError, match="the top level must be a mapping"):
        parse_rules(text)


def test_every_error_is_listed() -> None:
    message = error_of("colour: red\nrules:\n  r: {fact: nope, points: 1}\n  s: {fact: login, points: -1}\n")
    assert line_of(message, "colour")
    assert line_of(message, "rules.r.fact")
    assert line_of(message, "rules.s.points")


def test_error_names_the_source_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text("rules:\n  r: {fact: nope, points: 1}\n"), encoding="utf-8")
    with pytest.raises(RulesError, match=rf"invalid rules file {path}:"):
        load_rules(path)


def test_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "absent.yaml")


def test_rules_error_is_a_value_error() -> None:
    assert issubclass(RulesError, ValueError)


def test_rules_are_frozen() -> None:
    rules = load_rules()
    with pytest.raises(pydantic.ValidationError):
        rules.version = "x"  # type: ignore[misc]


def test_disabled_rule_that_pays_nothing_is_accepted() -> None:
    rules = parse_rules(rules_text("rules:\n  r: {fact: login, enabled: false}\n"))
    assert rules.rules["r"].enabled is False


def test_badge_shorthand_and_named_badge() -> None:
    rules = parse_rules(
        rules_text(
            "counters:\n  c: {fact: login, per: day}\nrules:\n"
            "  a: {counter: c, threshold: 1, badge: task}\n"
            "  b: {counter: c, threshold: 2, badge: {kind: achievement, name: b2}}\n"
        )
    )
    assert rules.rules["a"].badge is not None and rules.rules["a"].badge.kind == "task"
    assert rules.rules["a"].badge.name is None
    assert rules.rules["b"].badge is not None and rules.rules["b"].badge.name == "b2"


def test_campaign_counter_and_where_lists_are_accepted() -> None:
    rules = parse_rules(
        rules_text(
            "counters:\n  c: {fact: message, where: {kind: [voice, video], reply: true}, per: 'campaign:k'}\n"
            "rules:\n  r: {counter: c, threshold: 2, points: 4}\n"
            f"campaigns:\n  k: {{rules: [r], multiplier: 1.5, {WINDOW}}}\n"
        )
    )
    assert rules.counters["c"].per == "campaign:k"
    assert rules.counters["c"].where == {"kind": ["voice", "video"], "reply": True}
    assert rules.campaigns["k"].multiplier == Decimal("1.5")


def test_effective_from_in_epoch_ms_is_accepted() -> None:
    text = rules_text(LOGIN_RULE).replace(
        'effective_from: "2020-01-01T00:00:00"', "effective_from: 1795363200000"
    )
    rules = parse_rules(text)
    assert int(rules.effective_from.timestamp() * 1000) == 1_795_363_200_000


# --- the bundled defaults: seed 000's programme as SPEC tabulates it -----------------------------

DEFAULTS: Rules = load_rules()


def test_bundled_defaults_load_from_file_and_text(tmp_path: Path) -> None:
    path = tmp_path / "default.yaml"
    path.write_text(default_rules_text(), encoding="utf-8")
    assert load_rules(path) == DEFAULTS == parse_rules(default_rules_text())
    assert DEFAULTS.version == "2026-11-23.1"


def test_defaults_time_and_anti_gaming() -> None:
    assert DEFAULTS.time.retention_days == 35
    assert DEFAULTS.time.max_future_minutes == 60
    assert DEFAULTS.anti_gaming.like_pair_daily_limit == 5
    assert DEFAULTS.anti_gaming.group_min_invited == 1
    assert DEFAULTS.campaigns == {}


@pytest.mark.parametrize(
    ("rule", "fact", "where", "receiver", "points", "cap"),
    [
        ("message_text", "message", {"kind": "text"}, "actor", 2, {}),
        ("message_voice", "message", {"kind": "voice"}, "actor", 5, {}),
        ("message_video", "message", {"kind": "video"}, "actor", 5, {}),
        ("message_file", "message", {"kind": "file"}, "actor", 10, {}),
        ("message_image", "message", {"kind": "image"}, "actor", 10, {}),
        ("reply", "message", {"reply": True}, "actor", 3, {}),
        ("vote", "vote", {}, "actor", 8, {}),
        ("group_created", "group_created", {}, "actor", 15, {}),
        ("like_given", "like", {}, "actor", 1, {"day": 10}),
        ("thanks_received", "thanks_card", {}, "target", 20, {}),
        ("quality_bonus", "quality_marked", {}, "target", 10, {}),
    ],
)
def test_defaults_base_behaviour_points(
    rule: str, fact: str, where: dict[str, object], receiver: str, points: int, cap: dict[str, int]
) -> None:
    spec = DEFAULTS.rules[rule]
    assert (spec.fact, spec.where, spec.receiver, spec.points, spec.cap, spec.enabled) == (
        fact,
        where,
        receiver,
        points,
        cap,
        True,
    )


@pytest.mark.parametrize(
    ("rule", "counter", "fact", "period", "threshold", "points", "badge"),
    [
        ("daily_login", "logins_day", "login", "day", 1, 5, None),
        ("weekly_active_100", "messages_week", "message", "week", 100, 100, None),
        ("daily_messages", "messages_day", "message", "day", 3, 5, "task"),
        ("daily_likes", "likes_given_day", "like", "day", 2, 5, "task"),
        ("daily_feed_view", "feed_views_day", "feed_view", "day", 1, 5, "task"),
        ("weekly_groups", "groups_spoken_week", "message", "week", 3, 30, "task"),
        ("weekly_vote", "votes_week", "vote", "week", 1, 30, "task"),
        ("weekly_login_streak", "login_streak", "login", "week", 5, 30, "task"),
        ("messages_1000", "messages_lifetime", "message", "lifetime", 1000, 50, "achievement"),
        ("likes_received_100", "likes_received_lifetime", "like", "lifetime", 100, 50, "achievement"),
        ("groups_created_5", "groups_created_lifetime", "group_created", "lifetime", 5, 50, "achievement"),
    ],
)
def test_defaults_thresholds_and_tasks(
    rule: str, counter: str, fact: str, period: str, threshold: int, points: int, badge: str | None
) -> None:
    spec = DEFAULTS.rules[rule]
    watched = DEFAULTS.counters[spec.counter or ""]
    assert spec.counter == counter and watched.fact == fact
    assert (watched.per if not watched.streak else spec.per) == period
    assert (spec.threshold, spec.points) == (threshold, points)
    assert (spec.badge.kind if spec.badge else None) == badge


def test_defaults_counters_read_the_right_side_and_fields() -> None:
    assert DEFAULTS.counters["groups_spoken_week"].distinct == "group_id"
    assert DEFAULTS.counters["login_streak"].streak is True
    assert DEFAULTS.counters["likes_received_lifetime"].receiver == "target"
    assert all(c.receiver == "actor" for n, c in DEFAULTS.counters.items() if n != "likes_received_lifetime")
    assert all(not c.where for c in DEFAULTS.counters.values())


def test_defaults_levels() -> None:
    assert [(level.name, level.min_points) for level in DEFAULTS.levels] == [
        ("newcomer", 0),
        ("communicator", 1000),
        ("team_star", 5000),
    ]


def test_defaults_have_exactly_seed_000_rules() -> None:
    assert set(DEFAULTS.rules) == {
        "daily_login",
        "message_text",
        "message_voice",
        "message_video",
        "message_file",
        "message_image",
        "reply",
        "vote",
        "group_created",
        "like_given",
        "thanks_received",
        "quality_bonus",
        "weekly_active_100",
        "daily_messages",
        "daily_likes",
        "daily_feed_view",
        "weekly_groups",
        "weekly_vote",
        "weekly_login_streak",
        "messages_1000",
        "likes_received_100",
        "groups_created_5",
    }
