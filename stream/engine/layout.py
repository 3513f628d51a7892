"""Name and encode the keys of one user's state (format 2).

A user's state is a handful of small keys, each written only when it changes:

- ``<user>\\0core``: watermark, team, roster, lifetime points and level, the retained periods, and the
  record of the lifetime period (it changes with every event anyway);
- ``<user>\\0d:<day>``, ``w:<week>``, ``m:<month>``, ``c:<campaign>``: the record of one period: its
  counters, the points each rule paid in it (for caps), the thresholds it has paid, per-pair like counts;
  a day's record also holds the fingerprints of the event ids the day has seen (de-duplication), stored
  after its JSON as packed bytes;
- ``<user>\\0k:<counter>``: the runs of consecutive days of a streak counter.

Period records are flat mappings with one prefix per kind of entry (``#`` counter, ``~`` distinct
values, ``$`` points paid by a rule, ``!`` a threshold paid, ``@`` likes to a user), so a change copies
one small mapping. Format 1 (one JSON document per user, under the bare user id) is migrated on first
touch by stream/engine/migrate.py; a newer format stops the worker (``StateFormatError``).
"""

from __future__ import annotations

from typing import Any

import orjson

from stream.engine.fingerprints import Fingerprints

FORMAT = 2
SEPARATOR = b"\x00"
CORE = b"core"
COUNT, DISTINCT, PAID, DONE, PAIR = "#", "~", "$", "!", "@"
IGNORED_TAG = "?"  # in a day's record: events ignored or points capped that day, by reason ("?cap:<rule>")
SEEN = "s"  # in a day's record: the fingerprints of the event ids the day has seen


class StateFormatError(RuntimeError):
    """The stored state has a format this worker cannot read: the worker must stop, not guess."""


def prefix(user_key: bytes) -> bytes:
    """Return the prefix of every key of a user's state."""
    return user_key + SEPARATOR


def new_core() -> dict[str, Any]:
    """Return the core record of a user with no state yet."""
    return {
        "v": FORMAT,
        "wm": 0,
        "team": None,
        "roster": None,
        "left": False,
        "points": 0,
        "level": 0,
        "d0": 0,  # ordinal of the latest day with state
        "dm": 0,  # bit i set: day d0 - i has state (its seen fingerprints and period record)
        "px": 0,  # the earliest end (ms) of a kept period: nothing to prune before the horizon passes it
        "weeks": {},  # retained week records: name -> end (ms)
        "months": {},
        "campaigns": {},
    }


def team_of(core: dict[str, Any]) -> str | None:
    """Return a user's team: the one its own events carry, else its roster's (None: unknown)."""
    roster = core["roster"]
    team: str | None = core["team"] or (roster[0] if roster else None)
    return team


def decode_value(key: bytes, raw: bytes) -> Any:
    """Decode one stored value: JSON, and for a day's record its seen fingerprints after a NUL byte."""
    json, nul, packed = raw.partition(b"\x00")  # JSON never holds a raw NUL: orjson escapes control bytes
    value = orjson.loads(json)
    if nul:
        value[SEEN] = Fingerprints.decode(packed)
    return value


def encode_value(key: bytes, value: Any) -> bytes:
    """Encode one value for the store and the changelog."""
    seen = value.get(SEEN) if type(value) is dict else None
    if seen is None:
        return orjson.dumps(value)
    packed: bytes = seen.encode()
    return orjson.dumps({k: v for k, v in value.items() if k != SEEN}) + b"\x00" + packed


def check_core(core: dict[str, Any], user_key: bytes) -> None:
    """Raise ``StateFormatError`` unless ``core`` is of this worker's format."""
    version = core.get("v") if isinstance(core, dict) else None
    if version != FORMAT:
        raise StateFormatError(
            f"the state of user {user_key!r} has format {version!r}; this worker reads format {FORMAT} "
            "(a newer worker wrote it: run that version, or restore the state it expects)"
        )
