"""Define and validate the rules file.

The model forbids unknown fields, so a typo in the YAML stops the worker with the field's path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BASE_RULES = (
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
)


class RulesError(ValueError):
    """Raised when a rules file cannot be read or is invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRules(_Strict):
    """Event-time policy: how late and how early an event may be."""

    retention_days: int = Field(strict=True, default=35, ge=1, le=366)
    max_future_minutes: int = Field(strict=True, default=60, ge=0)


class BaseRule(_Strict):
    """Points for one behaviour, with an optional daily cap in points."""

    points: int = Field(strict=True, ge=0)
    daily_cap: int | None = Field(strict=True, default=None, ge=0)
    min_invited: int = Field(strict=True, default=1, ge=0)
    enabled: bool = True


class AntiGaming(_Strict):
    """Limits that make cheap gaming worthless."""

    like_pair_daily_limit: int = Field(strict=True, default=5, ge=0)


class Threshold(_Strict):
    """Points once per period when a counter first reaches a threshold."""

    counter: Literal["messages"]
    period: Literal["day", "week", "month"]
    threshold: int = Field(strict=True, ge=1)
    points: int = Field(strict=True, ge=0)


class Level(_Strict):
    """A level reached at a number of lifetime points."""

    name: str = Field(min_length=1)
    min_points: int = Field(strict=True, ge=0)


class Rules(_Strict):
    """All rules of one version."""

    version: str = Field(min_length=1)
    time: TimeRules = TimeRules()
    rules: dict[str, BaseRule]
    anti_gaming: AntiGaming = AntiGaming()
    thresholds: dict[str, Threshold] = {}
    levels: list[Level]

    @model_validator(mode="after")
    def _check(self) -> Rules:
        unknown = sorted(set(self.rules) - set(BASE_RULES))
        if unknown:
            raise ValueError(f"rules: unknown rule {unknown[0]!r} (known: {', '.join(BASE_RULES)})")
        missing = [name for name in BASE_RULES if name not in self.rules]
        if missing:
            raise ValueError(f"rules: missing rule {missing[0]!r} (set enabled: false to turn it off)")
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
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
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


def load_rules(path: Path | None = None) -> Rules:
    """Load rules from ``path``, or the bundled defaults when it is None."""
    if path is None:
        text = resources.files("stream.rules").joinpath("default.yaml").read_text(encoding="utf-8")
        return parse_rules(text, "(bundled default.yaml)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from exc
    return parse_rules(text, str(path))
