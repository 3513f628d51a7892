"""Keep every known version of the rules and pick the one in effect at an event's own time.

An event is scored by the version whose ``effective_from`` is the latest at or before its ``ts``, never by
when a worker learnt of a version: two workers, and a replay, score the same event the same way.
"""

from __future__ import annotations

import bisect
from zoneinfo import ZoneInfo

from stream.rules.compiler import CompiledRules, compile_rules
from stream.rules.model import Rules, RulesError, parse_rules


class RuleBook:
    """The versions known to this worker, ordered by ``effective_from`` (then by version name)."""

    def __init__(self, zone: ZoneInfo, first: CompiledRules) -> None:
        self.zone = zone
        self.versions: list[CompiledRules] = []
        self._starts: list[int] = []
        self.retention_ms = 0
        self.max_future_ms = 0
        self.add(first)

    @classmethod
    def of(cls, rules: Rules, zone: ZoneInfo, text: str = "") -> RuleBook:
        """Return a book holding one version."""
        return cls(zone, compile_rules(rules, zone, text))

    def add(self, compiled: CompiledRules) -> bool:
        """Add (or replace, by version name) a version; return whether the book changed."""
        for i, known in enumerate(self.versions):
            if known.version == compiled.version:
                if known.text and known.text == compiled.text:
                    return False
                del self.versions[i]
                break
        self.versions.append(compiled)
        self.versions.sort(key=lambda v: (v.effective_from_ms, v.version))
        self._starts = [v.effective_from_ms for v in self.versions]
        self.retention_ms = max(
            v.retention_ms for v in self.versions
        )  # periods are kept the longest any needs
        self.max_future_ms = max(v.max_future_ms for v in self.versions)  # the most any version allows
        return True

    def add_text(self, text: str, source: str) -> bool:
        """Parse, validate, compile and add a version from its YAML text; raise RulesError when invalid."""
        return self.add(compile_rules(parse_rules(text, source), self.zone, text))

    def at(self, ts_ms: int) -> CompiledRules:
        """Return the version in effect at event time ``ts_ms`` (the earliest one before any)."""
        starts = self._starts
        if len(starts) == 1:
            return self.versions[0]
        i = bisect.bisect_right(starts, ts_ms) - 1
        return self.versions[max(i, 0)]

    def get(self, version: str) -> CompiledRules:
        """Return a version by name."""
        for known in self.versions:
            if known.version == version:
                return known
        raise RulesError(f"unknown rules version {version!r}")

    @property
    def latest(self) -> CompiledRules:
        """Return the version with the latest ``effective_from``."""
        return self.versions[-1]
