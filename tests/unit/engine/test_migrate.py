"""Format 1 (one JSON document under the bare user id) migrates to format 2 on the first event."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import orjson
import pytest

from stream.core.state import MemoryStore
from stream.engine.fingerprints import fingerprint
from stream.engine.layout import FORMAT, StateFormatError
from stream.engine.periods import Calendar
from stream.engine.processor import APPLIED, DUPLICATE, IGNORED
from tests.unit.support import D0, DAY, NOON, TZ, Harness, act, credit, like, login, member, msg, paid

CAL = Calendar(TZ)
MONDAY = CAL.day_of(NOON)  # 2026-11-23, 2026-W48, 2026-11
SUNDAY = CAL.day_of(NOON - DAY)  # 2026-11-22, 2026-W47


def seen(*event_ids: str) -> str:
    return b64encode(b"".join(fingerprint(e) for e in event_ids)).decode()


def legacy_doc() -> dict[str, Any]:
    """A user's format-1 state as stream/engine/state.py (f9b2f99) wrote it."""
    return {
        "v": 1,
        "wm": NOON + 5_000,
        "team": "t-old",
        "roster": ["t-old", D0 - 90 * DAY],
        "points": 120,
        "level": 0,
        "life": {"messages": 41, "likes_given": 7, "like_received": 99, "groups_created": 4},
        "days": {
            "2026-11-22": {
                "end": SUNDAY.end_ms,
                "pts": {"message_text": 2},
                "n": {"messages": 1, "logins": 1},
                "seen": seen("old-sun-1", "old-sun-login"),
            },
            "2026-11-23": {
                "end": MONDAY.end_ms,
                "pts": {"message_text": 4, "like_given": 9, "daily_login": 5},
                "n": {"messages": 2, "logins": 1, "likes_given": 9, "feed_views": 1},
                "seen": seen("old-m1", "old-m2", "old-in1", *(f"old-l{i}" for i in range(9)), "old-fv1"),
                "pairs": {"u2": 4, "u3": 5},
                "done": ["daily_likes", "daily_feed_view"],
            },
        },
        "weeks": {
            "2026-W48": {
                "end": MONDAY.week_end_ms,
                "pts": {},
                "n": {"messages": 2, "votes": 1},
                "done": ["weekly_vote"],
            },
            "2026-W47": {"end": SUNDAY.week_end_ms, "pts": {}, "n": {"messages": 1}},
        },
        "months": {"2026-11": {"end": MONDAY.month_end_ms, "pts": {}, "n": {"messages": 3}}},
    }


def legacy_harness(doc: dict[str, Any] | None = None) -> Harness:
    store = MemoryStore()
    store.write(0, {b"u1": orjson.dumps(doc if doc is not None else legacy_doc())})
    return Harness(store=store)


def test_third_message_of_a_migrated_day_pays_the_daily_task() -> None:
    h = legacy_harness()
    out = h.apply(msg("u1", NOON + 10_000, event_id="m3"))
    assert out.status == APPLIED
    assert paid(out) == [("message_text", 2), ("daily_messages", 5)]
    assert out.points[1].period == "2026-11-23"
    assert [(b.badge, b.kind) for b in out.badges] == [("daily_messages", "task")]
    core = h.core("u1")
    assert core["v"] == FORMAT
    assert core["points"] == 120 + 7
    assert (core["team"], core["roster"], core["wm"]) == ("t1", ["t-old", D0 - 90 * DAY], NOON + 10_000)
    assert core["#messages_lifetime"] == 42
    assert core["#likes_received_lifetime"] == 99
    assert core["#groups_created_lifetime"] == 4
    assert h.record("u1", "d:2026-11-23")["#messages_day"] == 3  # type: ignore[index]
    assert h.record("u1", "w:2026-W48")["#messages_week"] == 3  # type: ignore[index]
    assert set(core["weeks"]) == {"2026-W47", "2026-W48"} and set(core["months"]) == {"2026-11"}


def test_the_old_key_is_deleted_in_the_same_transaction() -> None:
    h = legacy_harness()
    h.apply(msg("u1", NOON + 10_000))
    changes = h.cache.take_changes()
    assert changes[b"u1"] == (0, None)
    assert b"u1\x00core" in changes and b"u1\x00d:2026-11-23" in changes and b"u1\x00d:2026-11-22" in changes
    assert changes[b"u1\x00d:2026-11-22"][1].partition(b"\x00")[2], "the day's fingerprints follow its JSON"
    h.store.write(0, {k: raw for k, (_p, raw) in changes.items()})
    assert h.store.get(0, b"u1") is None
    # what was flushed reads back in format 2: no second migration
    again = Harness(store=h.store)
    out = again.apply(msg("u1", NOON + 20_000))
    assert paid(out) == [("message_text", 2)]
    assert again.core("u1")["#messages_lifetime"] == 43


def test_duplicates_are_recognised_from_migrated_fingerprints() -> None:
    h = legacy_harness()
    assert h.apply(msg("u1", NOON, event_id="old-m1")).status == DUPLICATE
    assert h.apply(msg("u1", NOON + DAY, event_id="old-sun-1")).status == DUPLICATE  # another day's id
    assert h.apply(login("u1", NOON, event_id="old-in1")).status == DUPLICATE
    assert h.core("u1")["points"] == 120
    assert h.apply(msg("u1", NOON, event_id="m-new")).status == APPLIED


def test_migrated_thresholds_caps_and_pairs_hold() -> None:
    h = legacy_harness()
    assert paid(h.apply(login("u1", NOON + 6_000))) == []  # daily_login paid before the migration
    assert paid(h.apply(act("u1", "feed_view", NOON + 7_000))) == []  # daily_feed_view done
    assert paid(h.apply(act("u1", "vote", NOON + 8_000))) == [("vote", 8)]  # weekly_vote done in W48
    assert paid(h.apply(like("u1", "u2", NOON + 9_000))) == [("like_given", 1)]  # the 10th point of the day
    assert paid(h.apply(like("u1", "u4", NOON + 9_500))) == []  # cap of 10 reached
    out = h.apply(like("u1", "u3", NOON + 9_600))
    assert (out.status, out.reason) == (IGNORED, "like_pair_limit")  # u3 had 5 already
    out = h.apply(like("u1", "u2", NOON + 9_700))
    assert (out.status, out.reason) == (IGNORED, "like_pair_limit")  # u2: 4 + 1


def test_migrated_logins_continue_a_streak() -> None:
    h = legacy_harness()
    assert h.cache.get(0, b"u1") is not None  # not yet migrated: nothing touched it
    h.apply(msg("u1", NOON + 6_000))
    assert h.cache.get(0, b"u1\x00k:login_streak") is not None
    runs = h.cache.get(0, b"u1\x00k:login_streak")
    assert runs == [[SUNDAY.ordinal, MONDAY.ordinal]]
    outs = [h.apply(login("u1", NOON + d * DAY)) for d in (1, 2)]
    assert [(a.rule, a.period) for a in outs[1].points if a.rule == "weekly_login_streak"] == []
    assert [a.rule for a in outs[1].points] == ["daily_login"]  # Sun..Wed: 4 days
    out = h.apply(login("u1", NOON + 3 * DAY))
    assert ("weekly_login_streak", "2026-W48") in [(a.rule, a.period) for a in out.points]


def test_migrated_periods_are_pruned_past_the_retention() -> None:
    h = legacy_harness()
    h.apply(msg("u1", NOON + 10_000))
    h.apply(msg("u1", NOON + 50 * DAY))  # the horizon (35 days back) is past November
    for suffix in (
        "d:2026-11-22",
        "d:2026-11-23",
        "w:2026-W47",
        "w:2026-W48",
        "m:2026-11",
    ):
        assert h.record("u1", suffix) is None, suffix
    assert h.core("u1")["weeks"] == {
        CAL.day_of(NOON + 50 * DAY).week: CAL.day_of(NOON + 50 * DAY).week_end_ms
    }


def test_a_credit_or_member_event_migrates_too() -> None:
    h = legacy_harness()
    out = h.apply(credit("u1", "like", NOON + 6_000))
    assert out.status == APPLIED
    assert h.core("u1")["#likes_received_lifetime"] == 100
    assert (out.badges[0].badge, out.badges[0].kind) == ("likes_received_100", "achievement")
    h2 = legacy_harness()
    h2.apply(member("u1", "t-new"))
    core = h2.core("u1")
    assert (core["v"], core["roster"], core["points"]) == (FORMAT, ["t-new", D0], 120)
    assert h2.apply(msg("u1", NOON, event_id="old-m2")).status == DUPLICATE


def test_a_core_of_a_newer_format_stops_the_engine() -> None:
    store = MemoryStore()
    store.write(0, {b"u1\x00core": orjson.dumps({"v": 3, "wm": 0})})
    h = Harness(store=store)
    with pytest.raises(StateFormatError, match="format 3"):
        h.apply(msg("u1", NOON))
    assert h.cache.dirty == {}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (orjson.dumps({"v": 3}), "format 3, not 1"),
        (b"not json", "neither format 1 nor 2"),
        (b"[1]", "format None"),
    ],
)
def test_a_bare_key_that_is_not_format_1_stops_the_engine(raw: bytes, words: str) -> None:
    store = MemoryStore()
    store.write(0, {b"u1": raw})
    h = Harness(store=store)
    with pytest.raises(StateFormatError, match=words):
        h.apply(msg("u1", NOON))
