"""Generate malformed input records, each one invalid by construction, of the kinds SPEC lists.

Every record this module returns must go to the dead-letter topic: none of them is a valid event of
its topic under SPEC and ``schemas/`` (a value that is not JSON, not an object, misses a required field,
has a wrong type, an out-of-range or whole-float integer, an unknown enum, a ``ts`` far in the future,
or no value at all). Values are built with the standard ``json`` module, which writes integers of any
size (``2**70``) and floats as they are.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SOURCES = ("message", "like", "login", "activity", "member")
REQUIRED = {
    "message": ("event_id", "user_id", "team_id", "kind", "ts"),
    "like": ("event_id", "user_id", "team_id", "target_user_id", "ts"),
    "login": ("event_id", "user_id", "team_id", "ts"),
    "activity": ("event_id", "user_id", "team_id", "type", "ts"),
    "member": ("user_id", "team_id", "joined_at"),
}
ENUMS = {"message": "kind", "activity": "type"}
INTEGERS = {"ts", "joined_at", "invited_count"}
BIG = 1_000_000  # characters of a "1 MB" string
BIG_RECORDS = 4  # 1 MB records are few: each costs a megabyte on every hop
MAX_INT = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Bad:
    """One malformed record: its kind (for reports), source topic kind, key and value bytes."""

    kind: str
    source: str
    key: bytes | None
    value: bytes | None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class Maker:
    """Build malformed records around plausible events of a small user population."""

    def __init__(self, rng: random.Random, users: int = 200, now_ms: int | None = None) -> None:
        self.rng = rng
        self.users = [f"bad{i:04d}" for i in range(users)]
        self.now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        self.n = 0
        self.kinds: dict[str, Callable[[str, dict[str, Any]], bytes | None]] = {
            "random_bytes": self.random_bytes,
            "invalid_utf8": self.invalid_utf8,
            "truncated_json": self.truncated_json,
            "not_an_object": self.not_an_object,
            "wrong_type": self.wrong_type,
            "int_2_70": self.int_2_70,
            "float_ts": self.float_ts,
            "negative_ts": self.negative_ts,
            "future_ts": self.future_ts,
            "big_string": self.big_string,
            "deep_nesting": self.deep_nesting,
            "unknown_enum": self.unknown_enum,
            "null_field": self.null_field,
            "null_value": self.null_value,
            "missing_field": self.missing_field,
            "empty_id": self.empty_id,
        }

    # --- a valid event to break ---------------------------------------------------------------

    def event(self, source: str) -> dict[str, Any]:
        """Return a valid event of ``source``."""
        rng = self.rng
        self.n += 1
        user, other = rng.sample(self.users, 2)
        ts = self.now_ms - rng.randrange(3_600_000, 5 * 86_400_000)
        if source == "member":
            return {"user_id": user, "team_id": "tbad", "joined_at": ts}
        e: dict[str, Any] = {"event_id": f"bad-{self.n}", "user_id": user, "team_id": "tbad", "ts": ts}
        if source == "message":
            e["kind"] = rng.choice(("text", "voice", "video", "file", "image"))
        elif source == "like":
            e["target_user_id"] = other
        elif source == "activity":
            e["type"] = rng.choice(("vote", "group_created", "thanks_card", "quality_marked", "feed_view"))
            if e["type"] == "group_created":
                e.update(group_id=f"gbad-{self.n}", invited_count=3)
            elif e["type"] in ("thanks_card", "quality_marked"):
                e["target_user_id"] = other
        return e

    def _time_field(self, source: str, e: dict[str, Any]) -> str:
        if source == "member":
            return "joined_at"
        if e.get("type") == "group_created" and self.rng.random() < 0.3:
            return "invited_count"
        return "ts"

    def _required(self, source: str, e: dict[str, Any]) -> list[str]:
        fields = list(REQUIRED[source])
        if e.get("type") == "group_created":
            fields += ["group_id", "invited_count"]
        elif e.get("type") in ("thanks_card", "quality_marked"):
            fields.append("target_user_id")
        return fields

    # --- the kinds: each returns the value bytes (None = a record without value) --------------

    def random_bytes(self, source: str, e: dict[str, Any]) -> bytes | None:
        return self.rng.randbytes(self.rng.randrange(0, 300))

    def invalid_utf8(self, source: str, e: dict[str, Any]) -> bytes | None:
        text = _dumps(e)
        bad = self.rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"))
        at = text.index(b'":"') + 3  # inside the first string value
        return text[:at] + bad + text[at:]

    def truncated_json(self, source: str, e: dict[str, Any]) -> bytes | None:
        text = _dumps(e)
        return text[: self.rng.randrange(1, len(text))]

    def not_an_object(self, source: str, e: dict[str, Any]) -> bytes | None:
        return _dumps(self.rng.choice(([e], [], [1, 2, 3], "an event", 42, 1.5, True, None, [[e]])))

    def wrong_type(self, source: str, e: dict[str, Any]) -> bytes | None:
        name = self.rng.choice(self._required(source, e))
        if name in INTEGERS:
            e[name] = self.rng.choice((str(e[name]), "12", 1.5, True, False, [], {}, [e[name]]))
        else:
            e[name] = self.rng.choice((0, 7, 1.5, True, [], {}, ["x"], {"id": "x"}))
        return _dumps(e)

    def int_2_70(self, source: str, e: dict[str, Any]) -> bytes | None:
        e[self._time_field(source, e)] = self.rng.choice((2**70, -(2**70), 2**64, MAX_INT + 1))
        return _dumps(e)

    def float_ts(self, source: str, e: dict[str, Any]) -> bytes | None:
        name = self._time_field(source, e)
        e[name] = self.rng.choice((float(e[name]), e[name] + 0.5, float(e[name]) * 1.0001))
        return _dumps(e)

    def negative_ts(self, source: str, e: dict[str, Any]) -> bytes | None:
        e[self._time_field(source, e)] = -self.rng.randrange(1, 2 * 10**12)
        return _dumps(e)

    def future_ts(self, source: str, e: dict[str, Any]) -> bytes | None:
        if source == "member":
            raise ValueError("joined_at has no future check: a member cannot be future_ts")
        e["ts"] = self.now_ms + self.rng.randrange(3 * 3_600_000, 10 * 365 * 86_400_000)
        return _dumps(e)

    def big_string(self, source: str, e: dict[str, Any]) -> bytes | None:
        name = ENUMS.get(source) or self._time_field(source, e)  # an enum or an integer: never valid
        e[name] = "x" * BIG
        return _dumps(e)

    def deep_nesting(self, source: str, e: dict[str, Any]) -> bytes | None:
        depth = self.rng.randrange(50, 5000)
        if self.rng.random() < 0.5:
            return b'{"a":' * depth + b"1" + b"}" * depth  # the whole value, deeper than parsers allow
        nested: Any = 1
        for _ in range(min(depth, 200)):
            nested = {"a": nested}
        e[self.rng.choice(self._required(source, e))] = nested  # a required field as a nested object
        return _dumps(e)

    def unknown_enum(self, source: str, e: dict[str, Any]) -> bytes | None:
        name = ENUMS[source]
        e[name] = self.rng.choice(("sticker", "TEXT", "", "text ", "poke", "Vote", "feed-view", "未知"))
        return _dumps(e)

    def null_field(self, source: str, e: dict[str, Any]) -> bytes | None:
        e[self.rng.choice(self._required(source, e))] = None
        return _dumps(e)

    def null_value(self, source: str, e: dict[str, Any]) -> bytes | None:
        return None

    def missing_field(self, source: str, e: dict[str, Any]) -> bytes | None:
        del e[self.rng.choice(self._required(source, e))]
        return _dumps(e)

    def empty_id(self, source: str, e: dict[str, Any]) -> bytes | None:
        ids = [n for n in self._required(source, e) if n not in INTEGERS and n not in ENUMS.values()]
        e[self.rng.choice(ids)] = ""
        return _dumps(e)

    # --- records ------------------------------------------------------------------------------

    def applies(self, kind: str, source: str) -> bool:
        """Tell whether ``kind`` makes an invalid record on ``source``."""
        if kind == "unknown_enum":
            return source in ENUMS
        if kind == "future_ts":
            return source != "member"
        return True

    def make(self, kind: str, source: str) -> Bad:
        """Return one malformed record of ``kind`` on ``source``."""
        e = self.event(source)
        key_user = e["user_id"]
        value = self.kinds[kind](source, e)
        roll = self.rng.random()
        if kind == "null_value" and source == "member":
            key = None  # a tombstone needs a key to say who left: without one it is malformed
        elif roll < 0.1:
            key = None
        elif roll < 0.2:
            key = self.rng.randbytes(self.rng.randrange(1, 20))
        else:
            key = key_user.encode()
        return Bad(kind, source, key, value)

    def batch(self, n: int) -> list[Bad]:
        """Return ``n`` malformed records spread evenly over the kinds and the sources they apply to."""
        kinds = [k for k in self.kinds if k != "big_string"]
        out = [self.make("big_string", SOURCES[i % len(SOURCES)]) for i in range(min(BIG_RECORDS, n))]
        i = 0
        while len(out) < n:
            kind = kinds[i % len(kinds)]
            sources = [s for s in SOURCES if self.applies(kind, s)]
            out.append(self.make(kind, sources[(i // len(kinds)) % len(sources)]))
            i += 1
        self.rng.shuffle(out)
        return out
