"""Migrate a user's state of format 1 (one JSON document under the bare user id) to format 2, on first touch.

The document's counters are carried into the bundled rules' counter names (``messages_day``,
``messages_week``, ``logins_day``, ...), its seen fingerprints, caps, per-pair like counts and paid
thresholds into the records of their periods; the old key is deleted in the same transaction. Format 1
kept no distinct groups, so ``groups_spoken_week`` starts again at the migration.
"""

from __future__ import annotations

from base64 import b64decode
from datetime import date
from typing import Any

import orjson

from stream.core.state import Transaction
from stream.engine.fingerprints import Fingerprints
from stream.engine.layout import (
    CORE,
    COUNT,
    DONE,
    PAID,
    PAIR,
    SEEN,
    StateFormatError,
    new_core,
    prefix,
)
from stream.engine.periods import Calendar

_DAY_COUNTERS = {
    "messages": "messages_day",
    "logins": "logins_day",
    "likes_given": "likes_given_day",
    "feed_views": "feed_views_day",
}
_WEEK_COUNTERS = {"messages": "messages_week", "votes": "votes_week"}
_LIFETIME_COUNTERS = {
    "messages": "messages_lifetime",
    "like_received": "likes_received_lifetime",
    "groups_created": "groups_created_lifetime",
}


def migrate_legacy(tx: Transaction, user_key: bytes, calendar: Calendar) -> dict[str, Any] | None:
    """Return the migrated core record of ``user_key`` (written into ``tx``), or None when there is no state."""
    raw = tx.cache.store.get(tx.partition, user_key)
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateFormatError(f"the state of user {user_key!r} is neither format 1 nor 2: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != 1:
        version = doc.get("v") if isinstance(doc, dict) else None
        raise StateFormatError(
            f"the state of user {user_key!r} under its bare id has format {version!r}, not 1"
        )
    p = prefix(user_key)
    core = new_core()
    for name in ("wm", "team", "roster", "points", "level"):
        core[name] = doc.get(name, core[name])
    core["left"] = bool(doc.get("left", False))
    login_days: list[int] = []
    for name, bucket in doc.get("days", {}).items():
        day = calendar.day_for_date(date.fromisoformat(name))
        record: dict[str, Any] = {
            COUNT + new: bucket["n"][old] for old, new in _DAY_COUNTERS.items() if old in bucket["n"]
        }
        record.update({PAID + rule: points for rule, points in bucket.get("pts", {}).items()})
        record.update({PAIR + target: n for target, n in bucket.get("pairs", {}).items()})
        record.update({DONE + rule: 1 for rule in bucket.get("done", [])})
        if bucket["n"].get("logins"):
            record[DONE + "daily_login"] = 1
            login_days.append(day.ordinal)
        record[SEEN] = Fingerprints.decode(b64decode(bucket.get("seen", "")))
        tx.set(p + b"d:" + name.encode(), record)
        if day.ordinal > core["d0"]:
            core["dm"] = (core["dm"] << (day.ordinal - core["d0"])) if core["d0"] else 0
            core["d0"] = day.ordinal
        core["dm"] |= 1 << (core["d0"] - day.ordinal)
    for kind, tag, counters in (("weeks", b"w:", _WEEK_COUNTERS), ("months", b"m:", {})):
        for name, bucket in doc.get(kind, {}).items():
            record = {COUNT + new: bucket["n"][old] for old, new in counters.items() if old in bucket["n"]}
            record.update({DONE + rule: 1 for rule in bucket.get("done", [])})
            tx.set(p + tag + name.encode(), record)
            core[kind] = {**core[kind], name: bucket["end"]}
    life = doc.get("life", {})
    core.update({COUNT + new: life[old] for old, new in _LIFETIME_COUNTERS.items() if old in life})
    runs: list[list[int]] = []
    for ordinal in sorted(login_days):
        if runs and runs[-1][1] == ordinal - 1:
            runs[-1][1] = ordinal
        else:
            runs.append([ordinal, ordinal])
    if runs:
        tx.set(p + b"k:login_streak", runs)
    ends = [
        calendar.day_for_ordinal(core["d0"] - i).end_ms
        for i in range(core["dm"].bit_length())
        if core["dm"] >> i & 1
    ]
    ends += [*core["weeks"].values(), *core["months"].values()]
    core["px"] = min(ends, default=0)
    tx.set(p + CORE, core)
    tx.delete(user_key)
    return core
