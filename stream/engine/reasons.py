"""Say in one short sentence why an award was paid (the ledger shows it; seed 000 wants points transparent)."""

from __future__ import annotations

from stream.rules.compiler import Campaign, CounterStep, Threshold

_PERIOD_WORDS = {"day": "of the day", "week": "of the week", "month": "of the month", "lifetime": ""}
_TASK_WORDS = {"day": "daily task", "week": "weekly task", "month": "monthly task"}


def ordinal(n: int) -> str:
    """Return ``n`` as an English ordinal: 1st, 2nd, 3rd, 4th, 11th, 22nd."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def _campaign(campaign: Campaign | None) -> str:
    if campaign is None:
        return ""
    m = campaign.multiplier  # a Fraction: x2, x1.5 (never x3/2)
    times = str(m.numerator) if m.denominator == 1 else format(float(m), "g")
    return f" (campaign '{campaign.title}', x{times})"


def per_fact_reason(title: str, campaign: Campaign | None, capped: tuple[str, int] | None) -> str:
    """Return why a per-fact rule paid: "text message", "gave a like (cap of 10 points a day reached)"."""
    reason = title + _campaign(campaign)
    if capped is not None:
        per, cap = capped
        reason += f" (cap of {cap} points a {per} reached)"
    return reason


def threshold_reason(threshold: Threshold, counter: CounterStep, n: int, campaign: Campaign | None) -> str:
    """Return why a threshold paid: "3rd message of the day: daily task 'send 3 messages'"."""
    if counter.per == "streak":
        what = f"{n}-day {counter.title} streak"
        per = threshold.per or "day"
    else:
        per = counter.per
        words = _PERIOD_WORDS.get(per)
        if words is None:  # a campaign's window
            words = f"of campaign '{counter.campaign.title if counter.campaign else per}'"
        what = f"{ordinal(n)} {counter.title} {words}".rstrip()
    if threshold.badge_kind == "task":
        kind = _TASK_WORDS.get(per, "task")
    elif threshold.badge_kind == "achievement":
        kind = "achievement"
    else:
        kind = "reward"
    return f"{what}: {kind} '{threshold.title}'{_campaign(campaign)}"
