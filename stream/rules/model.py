"""Define and validate the rule language: one YAML file is one version of the rules.

The model forbids unknown fields, so a typo stops the worker (or ``stream rules check``) with the path of
the field: ``rules.daily_messages.threshold: ...``. The vocabulary:

- a *fact* is something that counts, made from an event by the anti-gaming stage (stream/engine/facts.py);
  it has an actor and, for some facts, a target user (``receiver: target`` reads the target's side);
- a *counter* counts a fact per period (``per``), the distinct values of a field (``distinct``), or a streak
  of consecutive days (``streak: true``);
- a *rule* pays points per fact (with optional caps per period), or pays once per period when a counter
  first reaches a threshold (points, a badge, or both);
- a *campaign* multiplies the points of named rules between a start and an end (event time);
- *levels* are reached at lifetime points.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream.rules.invites import InviteSpec

# Each fact and its fields (what ``where`` and ``distinct`` may name); facts with a target user can be read
# from the target's side. Facts that count for nothing (self-likes, ...) are never made.
FACTS: dict[str, frozenset[str]] = {
    "message": frozenset({"kind", "group_id", "reply"}),
    "like": frozenset({"group_id"}),
    "login": frozenset(),
    "vote": frozenset(),
    "group_created": frozenset({"group_id"}),
    "thanks_card": frozenset(),
    "quality_marked": frozenset(),
    "feed_view": frozenset(),
}
TARGETED_FACTS = frozenset({"like", "thanks_card", "quality_marked"})
PERIODS = ("day", "week", "month", "lifetime")
CAP_PERIODS = ("day", "week", "month")
CAMPAIGN_PREFIX = "campaign:"

Scalar = str | bool | int
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class RulesError(ValueError):
    """Raised when a rules file cannot be read or is invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_fact(fact: str, receiver: str, where: dict[str, Scalar | list[Scalar]]) -> None:
    if fact not in FACTS:
        raise ValueError(f"fact: unknown fact {fact!r} (known: {', '.join(FACTS)})")
    if receiver == "target" and fact not in TARGETED_FACTS:
        raise ValueError(
            f"receiver: fact {fact!r} has no target user (facts with one: {', '.join(sorted(TARGETED_FACTS))})"
        )
    for name in where:
        if name not in FACTS[fact]:
            known = ", ".join(sorted(FACTS[fact])) or "none"
            raise ValueError(f"where: fact {fact!r} has no field {name!r} (its fields: {known})")


class TimeRules(_Strict):
    """Event-time policy: how late and how early an event may be."""

    retention_days: int = Field(strict=True, default=35, ge=1, le=366)
    max_future_minutes: int = Field(strict=True, default=60, ge=0)
    board_grace_minutes: int = Field(
        strict=True, default=60, ge=0
    )  # a week's boards close this long after it


class AntiGaming(_Strict):
    """Limits of the stage that makes facts: what fails them is no fact at all."""

    like_pair_daily_limit: int = Field(strict=True, default=5, ge=0)
    group_min_invited: int = Field(strict=True, default=1, ge=0)


class CounterSpec(_Strict):
    """Count a fact per period, its distinct values of a field, or a streak of consecutive days."""

    fact: str
    receiver: Literal["actor", "target"] = "actor"
    where: dict[str, Scalar | list[Scalar]] = {}
    per: str | None = None  # day | week | month | lifetime | campaign:NAME
    distinct: str | None = None
    streak: bool = False
    title: str | None = None  # what one count is, for reasons: "message"

    @model_validator(mode="after")
    def _check(self) -> CounterSpec:
        _check_fact(self.fact, self.receiver, self.where)
        if self.streak:
            if self.per is not None or self.distinct is not None:
                raise ValueError("a streak counts consecutive days: it takes no 'per' and no 'distinct'")
        elif self.per is None:
            raise ValueError("per: required (day, week, month, lifetime or campaign:NAME), or streak: true")
        elif self.per not in PERIODS and not self.per.startswith(CAMPAIGN_PREFIX):
            raise ValueError(f"per: {self.per!r} is not one of day, week, month, lifetime, campaign:NAME")
        if self.distinct is not None and self.distinct not in FACTS[self.fact]:
            known = ", ".join(sorted(FACTS[self.fact])) or "none"
            raise ValueError(
                f"distinct: fact {self.fact!r} has no field {self.distinct!r} (its fields: {known})"
            )
        return self


class BadgeSpec(_Strict):
    """The badge a threshold rule awards."""

    kind: Literal["task", "achievement"]
    name: str | None = Field(default=None, min_length=1)  # default: the rule's name


class RuleSpec(_Strict):
    """Points per fact (capped per period), or a reward once per period when a counter reaches a threshold."""

    title: str | None = None
    enabled: bool = True
    # points per fact
    fact: str | None = None
    receiver: Literal["actor", "target"] = "actor"
    where: dict[str, Scalar | list[Scalar]] = {}
    cap: dict[Literal["day", "week", "month"], int] = {}
    # threshold on a counter
    counter: str | None = None
    threshold: int | None = Field(strict=True, default=None, ge=1)
    per: Literal["day", "week", "month"] | None = None  # a streak's period of payment
    badge: BadgeSpec | None = None
    points: int = Field(strict=True, default=0, ge=0)

    @field_validator("badge", mode="before")
    @classmethod
    def _badge_shorthand(cls, value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("cap")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        for period, points in value.items():
            if type(points) is not int or points < 0:
                raise ValueError(f"{period}: must be a whole number of points >= 0")
        return value

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        if (self.fact is None) == (self.counter is None):
            raise ValueError("give either 'fact' (points per fact) or 'counter' with 'threshold'")
        if self.fact is not None:
            _check_fact(self.fact, self.receiver, self.where)
            for name in ("threshold", "per", "badge"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only a rule on a counter takes it")
        else:
            if self.threshold is None:
                raise ValueError("threshold: required with 'counter'")
            for name in ("where", "cap"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name}: a rule on a counter pays once per period; filter in the counter"
                    )
            if "receiver" in self.model_fields_set:
                raise ValueError(
                    "receiver: a rule on a counter pays the counter's owner; set it in the counter"
                )
        if self.badge is None and self.points == 0 and self.enabled:
            raise ValueError("points: a rule must pay points, a badge or both (or set enabled: false)")
        return self


class CampaignSpec(_Strict):
    """Multiply the points of named rules between ``start`` (inclusive) and ``end`` (exclusive), event time."""

    title: str | None = None
    rules: list[str] = Field(min_length=1)
    multiplier: Decimal = Field(gt=0, le=100)
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _check(self) -> CampaignSpec:
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        return self


GROUP_FACTS = frozenset(fact for fact, fields in FACTS.items() if "group_id" in fields)


class GroupRules(_Strict):
    """What counts as an interaction in a group: facts carrying its ``group_id``, counted for the actor."""

    interactions: list[str] = ["message", "like"]

    @field_validator("interactions")
    @classmethod
    def _facts(cls, value: list[str]) -> list[str]:
        for fact in value:
            if fact not in GROUP_FACTS:
                raise ValueError(
                    f"{fact!r} is not a fact with a group_id (those: {', '.join(sorted(GROUP_FACTS))})"
                )
        return value


class TeamRules(_Strict):
    """What counts toward a team's monthly total: the facts of its members' events (by the event's team)."""

    counts: list[str] = ["message"]

    @field_validator("counts")
    @classmethod
    def _facts(cls, value: list[str]) -> list[str]:
        for fact in value:
            if fact not in FACTS:
                raise ValueError(f"unknown fact {fact!r} (known: {', '.join(FACTS)})")
        return value


class ChallengeSpec(_Strict):
    """Pay the people of a group (per ISO week) or a team (per month) once, when its count reaches ``threshold``.

    A group pays every user who interacted in it that week, also those who interact after the crossing;
    a team pays each member on its roster at the crossing.
    """

    title: str | None = None
    enabled: bool = True
    owner: Literal["group", "team"]
    threshold: int = Field(strict=True, ge=1)
    points: int = Field(strict=True, ge=1)

    @property
    def per(self) -> str:
        """Return the period the challenge counts in: a group's week, a team's month."""
        return "week" if self.owner == "group" else "month"


class BoardSpec(_Strict):
    """A weekly board whose winner gets a ``title`` badge when the week closes.

    ``received``: the facts users received (``facts``); ``newcomer_points``: points earned in the week by
    users who joined within ``joined_within_days`` before the week ends; ``group_interactions``: a group's
    interactions in the week (each of its members active that week gets the title).
    """

    title: str | None = None
    enabled: bool = True
    score: Literal["received", "newcomer_points", "group_interactions"]
    facts: list[str] = []
    joined_within_days: int = Field(strict=True, default=30, ge=1)

    @model_validator(mode="after")
    def _check(self) -> BoardSpec:
        if self.score == "received":
            if not self.facts:
                raise ValueError("facts: a 'received' board needs the facts it counts")
            for fact in self.facts:
                if fact not in TARGETED_FACTS:
                    raise ValueError(
                        f"facts: {fact!r} has no target user (those: {', '.join(sorted(TARGETED_FACTS))})"
                    )
        elif self.facts:
            raise ValueError("facts: only a 'received' board takes it")
        return self


class Level(_Strict):
    """A level reached at a number of lifetime points."""

    name: str = Field(min_length=1)
    min_points: int = Field(strict=True, ge=0)


class Rules(_Strict):
    """All rules of one version."""

    version: str = Field(min_length=1, max_length=100)
    effective_from: datetime  # event time; without an offset, in STREAM_TIMEZONE
    time: TimeRules = TimeRules()
    anti_gaming: AntiGaming = AntiGaming()
    counters: dict[str, CounterSpec] = {}
    rules: dict[str, RuleSpec]
    campaigns: dict[str, CampaignSpec] = {}
    groups: GroupRules = GroupRules()
    teams: TeamRules = TeamRules()
    challenges: dict[str, ChallengeSpec] = {}
    boards: dict[str, BoardSpec] = {}
    invites: InviteSpec = InviteSpec()
    levels: list[Level]

    @field_validator("effective_from", mode="before")
    @classmethod
    def _epoch_ms(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000).astimezone()  # checked by the compiler in UTC
        return value

    @model_validator(mode="after")
    def _check(self) -> Rules:
        for section in ("counters", "rules", "campaigns", "challenges", "boards"):
            for name in getattr(self, section):
                if not NAME.fullmatch(name):
                    raise ValueError(
                        f"{section}.{name}: a name is a letter, then letters, digits, '_', '.' or '-'"
                    )
        for name, counter in self.counters.items():
            if counter.per and counter.per.startswith(CAMPAIGN_PREFIX):
                campaign = counter.per[len(CAMPAIGN_PREFIX) :]
                if campaign not in self.campaigns:
                    raise ValueError(f"counters.{name}.per: unknown campaign {campaign!r}")
        for name, rule in self.rules.items():
            if rule.counter is None:
                continue
            watched = self.counters.get(rule.counter)
            if watched is None:
                known = ", ".join(self.counters) or "none"
                raise ValueError(f"rules.{name}.counter: unknown counter {rule.counter!r} (known: {known})")
            if watched.streak and rule.per is None:
                raise ValueError(f"rules.{name}.per: a rule on a streak needs the period it pays once in")
            if not watched.streak and rule.per is not None:
                raise ValueError(f"rules.{name}.per: the counter's own period ({watched.per}) is the rule's")
        for name, spec in self.campaigns.items():
            for rule_name in spec.rules:
                if rule_name not in self.rules:
                    raise ValueError(f"campaigns.{name}.rules: unknown rule {rule_name!r}")
        for name in self.challenges:
            if name in self.rules:
                raise ValueError(f"challenges.{name}: a rule has that name too (award rules must differ)")
        badges = [(rule.badge.name or name) for name, rule in self.rules.items() if rule.badge]
        badges += list(self.boards)
        badges.append(self.invites.squad_badge)
        twice = sorted({badge for badge in badges if badges.count(badge) > 1})
        if twice:
            raise ValueError(f"rules: badge {twice[0]!r} is awarded by more than one rule")
        if not self.levels or self.levels[0].min_points != 0:
            raise ValueError("levels: the first level must start at min_points 0")
        for before, after in zip(self.levels, self.levels[1:], strict=False):
            if after.min_points <= before.min_points:
                raise ValueError(f"levels: {after.name!r} must need more points than {before.name!r}")
        names = [level.name for level in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("levels: level names must be unique")
        return self


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid rules file {source}:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "[key]")  # a bad key: its path
        message = item["msg"].removeprefix("Value error, ")
        # A model-level message may start with the field it is about ("threshold: ..."): join the paths.
        head, sep, rest = message.partition(": ")
        if sep and re.fullmatch(
            r"[\w.-]+|(?:counters|rules|campaigns|challenges|boards)\.[^:]+", head
        ):  # a path (a bad name too)
            where, message = (f"{where}.{head}" if where else head), rest
        lines.append(f"  {where or '(top level)'}: {message}")
    return "\n".join(lines)


def parse_rules(text: str, source: str = "<string>") -> Rules:
    """Parse and validate rules from YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"invalid rules file {source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesError(f"invalid rules file {source}: the top level must be a mapping")
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_describe(exc, source)) from exc


def default_rules_text() -> str:
    """Return the text of the bundled default rules file."""
    return resources.files("stream.rules").joinpath("default.yaml").read_text(encoding="utf-8")


def read_rules_text(path: Path | None) -> tuple[str, str]:
    """Return the text of a rules file (the bundled defaults when None) and a name for messages."""
    if path is None:
        return default_rules_text(), "(bundled default.yaml)"
    try:
        return Path(path).read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from exc


def load_rules(path: Path | None = None) -> Rules:
    """Load rules from ``path``, or the bundled defaults when it is None."""
    text, source = read_rules_text(path)
    return parse_rules(text, source)
