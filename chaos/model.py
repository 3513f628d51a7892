"""Compute the exact awards SPEC's base rules owe for a list of valid events, independently of the engine.

A second, deliberately plain implementation of the per-user rules the engine applies today (base points
with daily caps, anti-gaming, daily login, thanks cards and quality marks credited to the receiver,
message thresholds such as ``weekly_active_100``, levels), so that a disagreement with a real worker is
either a bug here or a bug in the engine. It reads the numbers from the rules YAML with PyYAML and never
imports ``stream``. Days, ISO weeks and months are calendar periods of the configured time zone.

Everything it computes is independent of the order events are processed in, as the engine's totals must
be: a daily cap or a pair limit decides *which* event earns, not *how many* do. The only exception is the
retention (``too_late``), which the chaos traffic stays well inside.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "stream" / "rules" / "default.yaml"


@dataclass
class Expected:
    """What the traffic must earn: points and award counts per user and rule, level badges per user."""

    points: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (user, rule)
    awards: Counter[tuple[str, str]] = field(default_factory=Counter)  # (user, rule) -> awards
    levels: dict[str, set[str]] = field(default_factory=dict)  # user -> level names reached above the first

    def totals(self) -> dict[str, int]:
        """Return each user's balance (users with no points are left out)."""
        out: dict[str, int] = defaultdict(int)
        for (user, _), pts in self.points.items():
            out[user] += pts
        return {user: pts for user, pts in out.items() if pts}

    def award_count(self) -> int:
        """Return the number of distinct point awards."""
        return sum(self.awards.values())

    def by_rule(self) -> Counter[str]:
        """Return the number of awards per rule."""
        out: Counter[str] = Counter()
        for (_, rule), n in self.awards.items():
            out[rule] += n
        return out


class _Periods:
    """Name the local day, ISO week and month of an epoch-millisecond time."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def of(self, ts_ms: int) -> tuple[str, str, str]:
        local = datetime.fromtimestamp(ts_ms / 1000, self.zone).date()
        year, week, _ = local.isocalendar()
        return local.isoformat(), f"{year}-W{week:02d}", f"{local.year}-{local.month:02d}"


class Model:
    """Replay valid events through SPEC's base rules and collect the expected awards."""

    def __init__(self, rules_file: Path = DEFAULT_RULES, timezone: str = "Asia/Shanghai") -> None:
        doc = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
        self.rules: dict[str, dict[str, Any]] = doc["rules"]
        self.pair_limit: int = doc.get("anti_gaming", {}).get("like_pair_daily_limit", 5)
        self.thresholds: dict[str, dict[str, Any]] = doc.get("thresholds", {})
        self.levels: list[dict[str, Any]] = doc["levels"]
        self.periods = _Periods(timezone)
        self.expected = Expected()
        self._seen: set[tuple[str, str]] = set()  # (user, event id)
        self._paid_today: Counter[tuple[str, str, str]] = Counter()  # (user, day, rule) -> points
        self._likes: Counter[tuple[str, str, str]] = Counter()  # (giver, day, receiver) -> counted likes
        self._messages: Counter[tuple[str, str, str]] = Counter()  # (user, period kind, period) -> messages
        self._logged_in: set[tuple[str, str]] = set()  # (user, day)

    # --- input --------------------------------------------------------------------------------

    def feed(self, records: Iterable[tuple[str, Any, Any]]) -> Model:
        """Apply (source, key, value) records; values must be valid events (dicts), members are skipped."""
        for source, _key, value in records:
            if source == "member" or value is None:
                continue  # the roster earns nothing by itself
            self.event(source, value)
        return self

    def event(self, source: str, e: dict[str, Any]) -> None:
        """Apply one valid event of ``source`` (message, like, login or activity)."""
        user = e["user_id"]
        if not self._first(user, e["event_id"]):
            return
        day, week, month = self.periods.of(e["ts"])
        if source == "message":
            self._pay(user, day, "message_" + e["kind"])
            reply_to = e.get("reply_to_user_id")
            if reply_to is not None and reply_to != user:
                self._pay(user, day, "reply")
            names = {"day": day, "week": week, "month": month}
            for name, t in self.thresholds.items():
                if t["counter"] != "messages":
                    continue
                key = (user, t["period"], names[t["period"]])
                self._messages[key] += 1
                if self._messages[key] == t["threshold"] and t["points"] > 0:
                    self._award(user, name, t["points"])
        elif source == "like":
            target = e["target_user_id"]
            if target == user or self._likes[(user, day, target)] >= self.pair_limit:
                return
            self._likes[(user, day, target)] += 1
            self._pay(user, day, "like_given")
        elif source == "login":
            if (user, day) not in self._logged_in:
                self._logged_in.add((user, day))
                self._pay(user, day, "daily_login")
        elif source == "activity":
            kind = e["type"]
            if kind == "vote":
                self._pay(user, day, "vote")
            elif kind == "group_created":
                if (e.get("invited_count") or 0) >= self.rules["group_created"].get("min_invited", 1):
                    self._pay(user, day, "group_created")
            elif kind in ("thanks_card", "quality_marked"):
                target = e.get("target_user_id")
                if target is None or target == user:
                    return
                rule = "thanks_received" if kind == "thanks_card" else "quality_bonus"
                # The receiver counts the credit once, by the source event's id.
                if self._first(target, f"{rule}:{e['event_id']}"):
                    self._pay(target, day, rule)
        else:
            raise ValueError(f"unknown source {source!r}")

    # --- results ------------------------------------------------------------------------------

    def result(self) -> Expected:
        """Return the expected awards, with the levels each user's final balance reached."""
        exp = self.expected
        for user, total in exp.totals().items():
            reached = {lv["name"] for lv in self.levels[1:] if total >= lv["min_points"]}
            if reached:
                exp.levels[user] = reached
        return exp

    # --- helpers ------------------------------------------------------------------------------

    def _first(self, user: str, event_id: str) -> bool:
        key = (user, event_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _pay(self, user: str, day: str, rule: str) -> None:
        """Pay a base rule within its daily cap (a partial payment when the cap cuts it)."""
        spec = self.rules[rule]
        points = spec["points"]
        if not spec.get("enabled", True) or points <= 0:
            return
        cap = spec.get("daily_cap")
        if cap is not None:
            points = min(points, cap - self._paid_today[(user, day, rule)])
            if points <= 0:
                return
        self._paid_today[(user, day, rule)] += points
        self._award(user, rule, points)

    def _award(self, user: str, rule: str, points: int) -> None:
        self.expected.points[(user, rule)] += points
        self.expected.awards[(user, rule)] += 1


def expect(records: Iterable[tuple[str, Any, Any]], rules_file: Path = DEFAULT_RULES) -> Expected:
    """Return the awards SPEC's base rules owe for ``records`` (valid events only)."""
    return Model(rules_file).feed(records).result()
