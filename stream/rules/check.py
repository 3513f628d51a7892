"""Tell an operator what a rules file allows: the most points one user can earn in a day and in a week.

Seed 000: a normal user earns 200-300 points a week. A per-fact rule without a cap pays for a fact a user
(or a friend) can repeat at will, so no bound exists: ``stream rules check`` says which rules make it so and
gives the bound of everything else. Campaigns are counted at their multipliers (the most they allow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from stream.rules.model import Rules


@dataclass
class Economy:
    """The most one user can earn in a day and in a week, and what makes it unbounded."""

    day: int = 0
    week: int = 0
    once: int = 0  # thresholds paid once a month or once ever, which may all fall on one day
    uncapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Return the report, one line each."""
        out = []
        if self.uncapped:
            out.append(
                "most points one user can earn: UNBOUNDED in a day and in a week; rules with no cap on a fact "
                f"a user can repeat at will: {', '.join(self.uncapped)}"
            )
            out.append(f"  without them: at most {self.day} points in a day, {self.week} in a week")
        else:
            out.append(f"most points one user can earn: {self.day} in a day, {self.week} in a week")
        if self.once:
            out.append(
                f"  plus at most {self.once} points from monthly and lifetime thresholds (achievements)"
            )
        out.extend(f"  {note}" for note in self.notes)
        return out


def _multiplier(rules: Rules, name: str) -> Fraction:
    best = Fraction(1)
    for campaign in rules.campaigns.values():
        if name in campaign.rules:
            best = max(best, Fraction(campaign.multiplier))
    return best


def economy(rules: Rules) -> Economy:
    """Return the bounds of ``rules``."""
    result = Economy()
    for name, rule in rules.rules.items():
        if not rule.enabled or rule.points <= 0:
            continue
        boost = _multiplier(rules, name)
        if rule.fact is not None:
            if not rule.cap:
                result.uncapped.append(name)
                continue
            # the cap bounds what a rule pays, multiplied or not
            caps = rule.cap
            per_day = min(caps.values())
            week_bounds = [caps[p] for p in ("week", "month") if p in caps]
            if "day" in caps:
                week_bounds.append(7 * caps["day"])
            per_week = min(week_bounds)
            result.day += per_day
            result.week += per_week
            continue
        points = math.floor(rule.points * boost)
        counter = rules.counters[rule.counter or ""]
        per = rule.per if counter.streak else counter.per
        if per == "day":
            result.day += points
            result.week += 7 * points
        elif per == "week":
            result.day += points
            result.week += points
        else:  # month, lifetime, a campaign's window: once for each, possibly on the same day
            result.once += points
    for name, challenge in rules.challenges.items():
        if not challenge.enabled:
            continue
        if challenge.owner == "group":
            result.notes.append(
                f"challenge {name}: {challenge.points} points a week for each group a user interacts in "
                "that reaches its threshold (not bounded by the number of groups)"
            )
        else:
            result.once += challenge.points
    if rules.campaigns:
        result.notes.append("campaign multipliers are counted at their highest (caps still bound)")
    invites = rules.invites
    if invites.enabled:
        top = max([invites.default_multiplier, *invites.channels.values()])
        per_day = math.floor(max(tier.points for tier in invites.tiers) * top) * invites.daily_limit
        budget = (
            "no monthly budget"
            if invites.monthly_budget is None
            else f"budget {invites.monthly_budget}/month"
        )
        result.notes.append(
            f"invitations: an inviter earns at most {per_day} points a day before an operator must approve "
            f"more (daily limit {invites.daily_limit}, top tier, best channel multiplier {top}); {budget}"
        )
    return result
