"""The ``stream rules check | publish | show`` commands, and the rules book a worker starts with."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from stream.rules.check import economy
from stream.rules.compiler import CompiledRules, compile_rules
from stream.rules.model import RulesError, parse_rules, read_rules_text
from stream.rules.versions import RuleBook
from stream.runtime.rules_topic import add_published, publish, read_published
from stream.settings import Settings

FORCE_EXPLAINED = (
    "events already scored are never rescored: an effective_from in the past changes only events not yet "
    "scored (late ones, and any replay after a crash, which would then score differently from the first "
    "pass). Use --force only when no event at or after effective_from has been processed yet"
)


def _local(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="seconds")


def compile_file(path: Path | None, settings: Settings) -> tuple[CompiledRules, str]:
    """Read, validate and compile a rules file (the bundled defaults when None)."""
    text, source = read_rules_text(path)
    return compile_rules(parse_rules(text, source), ZoneInfo(settings.timezone), text), text


def startup_book(settings: Settings, compiled: CompiledRules | None = None) -> RuleBook:
    """Return the book a worker starts with: its rules file, then every version published to the topic."""
    if compiled is None:
        compiled, _text = compile_file(settings.rules_file, settings)
    book = RuleBook(ZoneInfo(settings.timezone), compiled)
    add_published(book, read_published(settings))
    return book


def check(path: Path, settings: Settings) -> list[str]:
    """Validate a rules file; return the report (raise RulesError when invalid)."""
    compiled, _text = compile_file(path, settings)
    rules = compiled.source
    zone = ZoneInfo(settings.timezone)
    lines = [
        f"{path}: valid. version {rules.version}, effective from {_local(compiled.effective_from_ms, zone)} "
        f"({settings.timezone}); {len(rules.counters)} counters, {len(rules.rules)} rules, "
        f"{len(rules.campaigns)} campaigns, {len(rules.levels)} levels",
        *economy(rules).lines(),
    ]
    return lines


def publish_file(path: Path, settings: Settings, force: bool, now_ms: int | None = None) -> list[str]:
    """Validate and publish a rules file to the rules topic; raise RulesError when it is refused."""
    compiled, text = compile_file(path, settings)
    zone = ZoneInfo(settings.timezone)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    lines = []
    if compiled.effective_from_ms < now:
        if not force:
            raise RulesError(
                f"refused: effective_from {_local(compiled.effective_from_ms, zone)} is earlier than now "
                f"({_local(now, zone)}); {FORCE_EXPLAINED}"
            )
        lines.append(f"warning (--force): effective_from is in the past; {FORCE_EXPLAINED}")
    for known in read_published(settings):
        if known.version == compiled.version:
            if known.text == text:
                return [f"version {compiled.version} is already published with this content; nothing to do"]
            if not force:
                raise RulesError(
                    f"refused: version {compiled.version} was already published with other content; "
                    "give the new content a new version (or --force to replace it)"
                )
    publish(settings, compiled, text)
    lines.append(
        f"published version {compiled.version} to {settings.topic_rules}, effective from "
        f"{_local(compiled.effective_from_ms, zone)}; workers pick it up without a restart"
    )
    return lines


def show(settings: Settings, now_ms: int | None = None) -> list[str]:
    """Return the versions known (rules file and topic) and the one in effect now."""
    book = startup_book(settings)
    zone = ZoneInfo(settings.timezone)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    current = book.at(now)
    lines = [f"rules versions ({settings.timezone}), by effective_from:"]
    for version in book.versions:
        mark = "  <- in effect now" if version is current else ""
        lines.append(
            f"  {version.version:<24} effective from {_local(version.effective_from_ms, zone)}{mark}"
        )
    return lines
