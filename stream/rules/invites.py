"""Define the invitation rules of seed 002 (the ``invites`` section of a rules file) and compile them.

An inviter earns a tiered reward for each credited registration (the tier counts every registration
credited to the inviter so far), the invitee a welcome reward; each is promised as two pending halves
that activate on the invitee's own activity within a window, else expire. A channel's multiplier scales
both (0 switches the channel off). Values only: the lifecycle is in stream/domains/invitee.py and
stream/domains/inviter.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY_MS = 86_400_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierSpec(_Strict):
    """From the inviter's ``start``-th credited registration on, each pays ``points``."""

    start: int = Field(strict=True, ge=1)
    points: int = Field(strict=True, ge=0)


class InviteSpec(_Strict):
    """Every value, window and limit of the invitation rewards."""

    enabled: bool = True
    tiers: list[TierSpec] = [
        TierSpec(start=1, points=10),
        TierSpec(start=6, points=15),
        TierSpec(start=11, points=20),
    ]
    welcome_points: int = Field(strict=True, default=10, ge=0)
    channels: dict[str, Decimal] = {}  # channel -> multiplier of its rewards (0: switched off)
    default_multiplier: Decimal = Field(default=Decimal(1), ge=0, le=100)
    activation_days: int = Field(strict=True, default=7, ge=1, le=366)  # both halves activate within this
    full_messages: int = Field(strict=True, default=10, ge=0, le=1000)  # the rest: messages sent ...
    full_groups: int = Field(strict=True, default=2, ge=0, le=100)  # ... and distinct groups spoken in
    second_level_points: int = Field(strict=True, default=2, ge=0)
    squad_size: int = Field(strict=True, default=3, ge=1)  # fully activated invitees for the badge
    squad_badge: str = Field(default="squad", min_length=1)
    daily_limit: int = Field(strict=True, default=20, ge=0)  # credited a day beyond this wait for approval
    fraud_window_days: int = Field(strict=True, default=30, ge=1, le=366)
    retention_day: int = Field(strict=True, default=7, ge=1, le=366)  # "active on day 7 or later"
    monthly_budget: int | None = Field(strict=True, default=None, ge=0)  # points promised a month; off
    grace_minutes: int = Field(strict=True, default=60, ge=0)  # a deadline fires this long after it passes

    @model_validator(mode="after")
    def _check(self) -> InviteSpec:
        if not self.tiers or self.tiers[0].start != 1:
            raise ValueError("tiers: the first tier must start at the 1st registration")
        for before, after in zip(self.tiers, self.tiers[1:], strict=False):
            if after.start <= before.start:
                raise ValueError(f"tiers: a tier starting at {after.start} must follow {before.start}")
        for channel, multiplier in self.channels.items():
            if not channel or not 0 <= multiplier <= 100:
                raise ValueError(f"channels.{channel}: a multiplier is between 0 and 100")
        return self


@dataclass(frozen=True, slots=True)
class InviteRules:
    """The invitation rules of one version, in milliseconds and fractions."""

    enabled: bool
    tiers: tuple[tuple[int, int], ...]  # (first registration number, points), ascending
    welcome_points: int
    channels: dict[str, Fraction] = field(hash=False)
    default_multiplier: Fraction
    window_ms: int
    full_messages: int
    full_groups: int
    second_level_points: int
    squad_size: int
    squad_badge: str
    daily_limit: int
    fraud_window_ms: int
    retention_day: int
    monthly_budget: int | None
    grace_ms: int

    def multiplier(self, channel: str) -> Fraction:
        """Return the multiplier of a channel's rewards."""
        return self.channels.get(channel, self.default_multiplier)

    def tier_points(self, n: int) -> int:
        """Return what the inviter's ``n``-th credited registration pays before the channel's multiplier."""
        points = 0
        for start, tier in self.tiers:
            if n < start:
                break
            points = tier
        return points


def compile_invites(spec: InviteSpec) -> InviteRules:
    """Compile the ``invites`` section."""
    return InviteRules(
        enabled=spec.enabled,
        tiers=tuple((tier.start, tier.points) for tier in spec.tiers),
        welcome_points=spec.welcome_points,
        channels={name: Fraction(value) for name, value in spec.channels.items()},
        default_multiplier=Fraction(spec.default_multiplier),
        window_ms=spec.activation_days * DAY_MS,
        full_messages=spec.full_messages,
        full_groups=spec.full_groups,
        second_level_points=spec.second_level_points,
        squad_size=spec.squad_size,
        squad_badge=spec.squad_badge,
        daily_limit=spec.daily_limit,
        fraud_window_ms=spec.fraud_window_days * DAY_MS,
        retention_day=spec.retention_day,
        monthly_budget=spec.monthly_budget,
        grace_ms=spec.grace_minutes * 60_000,
    )
