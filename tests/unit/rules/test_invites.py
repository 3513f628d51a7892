"""The invites section of a rules file: defaults from SPEC, validation, the compiled tiers and channels."""

from __future__ import annotations

from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from stream.rules import RulesError
from stream.rules.compiler import compile_rules
from stream.rules.invites import DAY_MS
from stream.rules.model import load_rules
from tests.unit.support import parse


def test_the_defaults_are_seed_002() -> None:
    invites = compile_rules(load_rules(), ZoneInfo("Asia/Shanghai")).invites
    assert [invites.tier_points(n) for n in range(1, 13)] == [10] * 5 + [15] * 5 + [20] * 2
    assert invites.welcome_points == 10 and invites.second_level_points == 2
    assert invites.window_ms == 7 * DAY_MS and invites.fraud_window_ms == 30 * DAY_MS
    assert (invites.full_messages, invites.full_groups, invites.squad_size) == (10, 2, 3)
    assert invites.daily_limit == 20 and invites.monthly_budget is None
    assert invites.multiplier("anything") == 1


def test_channels_and_budget_are_data() -> None:
    rules = parse(
        "rules: {}\ninvites: {channels: {poster: 0.5, spam: 0}, monthly_budget: 5000, daily_limit: 3}"
    )
    invites = compile_rules(rules, ZoneInfo("Asia/Shanghai")).invites
    assert invites.multiplier("poster") == Fraction(1, 2) and invites.multiplier("spam") == 0
    assert invites.monthly_budget == 5000 and invites.daily_limit == 3


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{tiers: [{start: 2, points: 10}]}", "first tier"),
        ("{tiers: [{start: 1, points: 10}, {start: 1, points: 15}]}", "must follow"),
        ("{channels: {poster: -1}}", "between 0 and 100"),
        ("{welcome_points: -1}", "welcome_points"),
        ("{activation_days: 0}", "activation_days"),
        ("{typo: 1}", "typo"),
    ],
)
def test_a_wrong_value_names_its_field(section: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        parse(f"rules: {{}}\ninvites: {section}")
