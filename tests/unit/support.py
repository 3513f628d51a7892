"""Shared helpers of the unit tests on per-key state: events, an engine over a MemoryStore, rules from YAML."""

from __future__ import annotations

import itertools
import textwrap
from typing import Any
from zoneinfo import ZoneInfo

from stream.core.state import MemoryStore, StateCache
from stream.engine.credits import Credit
from stream.engine.layout import CORE, decode_value, encode_value, prefix
from stream.engine.periods import Calendar
from stream.engine.processor import Engine, Outcome
from stream.events import Activity, Like, Login, Member, Message
from stream.rules.compiler import compile_rules
from stream.rules.model import GroupRules, Rules, TeamRules, load_rules, parse_rules
from stream.rules.versions import RuleBook

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # 2026-11-23 00:00 in Shanghai: a Monday, the first day of 2026-W48
NOON = D0 + 12 * HOUR

_ids = itertools.count(1)


def new_id(tag: str = "e") -> str:
    return f"{tag}{next(_ids)}"


def msg(
    user: str,
    ts: int,
    kind: str = "text",
    *,
    group: str | None = None,
    reply_to: str | None = None,
    team: str = "t1",
    event_id: str | None = None,
) -> Message:
    return Message(event_id or new_id("m"), user, team, kind, ts, group_id=group, reply_to_user_id=reply_to)


def like(
    user: str,
    target: str,
    ts: int,
    *,
    group: str | None = None,
    team: str = "t1",
    event_id: str | None = None,
) -> Like:
    return Like(event_id or new_id("l"), user, team, target, ts, group_id=group)


def login(user: str, ts: int, *, team: str = "t1", event_id: str | None = None) -> Login:
    return Login(event_id or new_id("in"), user, team, ts)


def act(
    user: str,
    kind: str,
    ts: int,
    *,
    target: str | None = None,
    invited: int | None = None,
    group: str | None = None,
    team: str = "t1",
    event_id: str | None = None,
) -> Activity:
    if kind == "group_created" and group is None:
        group = "g1"
    return Activity(event_id or new_id("a"), user, team, kind, ts, group, invited, target)


def member(user: str, team: str, joined_at: int = D0) -> Member:
    return Member(user, team, joined_at)


def credit(
    receiver: str,
    kind: str,
    ts: int,
    *,
    sender: str = "s1",
    team: str = "t-sender",
    source: str | None = None,
    group: str | None = None,
) -> Credit:
    return Credit(receiver, kind, sender, team, source or new_id("src"), ts, group)


def personal_only(rules: Rules) -> Rules:
    """Return ``rules`` without groups, teams, challenges and boards: the per-user programme alone."""
    return rules.model_copy(
        update={
            "groups": GroupRules(interactions=[]),
            "teams": TeamRules(counts=[]),
            "challenges": {},
            "boards": {},
        }
    )


def rules_text(yaml_text: str) -> str:
    """Return a rules file: the body given (counters, rules, ...) under a version header and levels."""
    body = textwrap.dedent(yaml_text).strip("\n")
    head = 'version: "t1"\neffective_from: "2020-01-01T00:00:00"\n'
    if "levels:" not in body:
        body += "\nlevels:\n  - {name: newcomer, min_points: 0}\n"
    if not body.lstrip().startswith("version:"):
        body = head + body
    return body + "\n"


def parse(yaml_text: str) -> Rules:
    return parse_rules(rules_text(yaml_text))


def book_of(*versions: Rules | str) -> RuleBook:
    """Return a RuleBook of the given versions (Rules, or YAML bodies for ``rules_text``)."""
    compiled = [compile_rules(v if isinstance(v, Rules) else parse(v), ZONE) for v in versions]
    book = RuleBook(ZONE, compiled[0])
    for more in compiled[1:]:
        book.add(more)
    return book


class Harness:
    """An Engine over a MemoryStore-backed StateCache; every event in its own committed transaction."""

    def __init__(self, book: RuleBook | None = None, store: MemoryStore | None = None) -> None:
        self.book = book if book is not None else RuleBook.of(load_rules(), ZONE)
        self.engine = Engine(self.book, Calendar(TZ))
        self.store = store if store is not None else MemoryStore()
        self.cache = StateCache(self.store, decode_value, encode_value)

    def apply(self, event: Any, partition: int = 0) -> Outcome:
        tx = self.cache.begin(partition)
        try:
            out = self.engine.apply(event, tx, event.user_id.encode())
        except BaseException:
            tx.rollback()
            raise
        tx.commit()
        return out

    def apply_all(self, events: list[Any]) -> list[Outcome]:
        return [self.apply(event) for event in events]

    def deliver(self, outcome: Outcome) -> list[Outcome]:
        """Apply the credits of an outcome to their receivers."""
        return [self.apply(c) for c in outcome.credits]

    def flush(self) -> None:
        changes = self.cache.take_changes()
        by_partition: dict[int, dict[bytes, bytes | None]] = {}
        for key, (partition, raw) in changes.items():
            by_partition.setdefault(partition, {})[key] = raw
        for partition, encoded in by_partition.items():
            self.store.write(partition, encoded)

    def core(self, user: str) -> dict[str, Any]:
        value: dict[str, Any] = self.cache.get(0, prefix(user.encode()) + CORE)
        return value

    def record(self, user: str, suffix: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.cache.get(0, prefix(user.encode()) + suffix.encode())
        return value


def paid(out: Outcome) -> list[tuple[str, int]]:
    return [(award.rule, award.points) for award in out.points]


def total(outs: list[Outcome], rule: str | None = None) -> int:
    return sum(a.points for o in outs for a in o.points if rule is None or a.rule == rule)
