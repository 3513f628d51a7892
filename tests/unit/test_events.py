"""Unit tests of stream.events: every event type, every reason, optional fields, tombstones, dead letters."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import orjson
import pytest

from stream.events import (
    ACTIVITY_TYPES,
    INVITE_TYPES,
    MAX_DEADLETTER_VALUE_BYTES,
    MAX_ID_CHARS,
    MAX_INT,
    MAX_RECORD_BYTES,
    MESSAGE_KINDS,
    SOURCES,
    Activity,
    Event,
    InvalidEvent,
    Invite,
    Like,
    Login,
    Member,
    MemberLeft,
    Message,
    Reason,
    decode,
    encode_deadletter,
)

NOW = 1_795_000_000_000  # 2026-11-18, epoch ms
HOUR = 3_600_000

VALID: dict[str, dict[str, Any]] = {
    "message": {"event_id": "e1", "user_id": "u1", "team_id": "t1", "kind": "text", "ts": NOW},
    "like": {"event_id": "e1", "user_id": "u1", "team_id": "t1", "target_user_id": "u2", "ts": NOW},
    "login": {"event_id": "e1", "user_id": "u1", "team_id": "t1", "ts": NOW},
    "activity": {"event_id": "e1", "user_id": "u1", "team_id": "t1", "type": "vote", "ts": NOW},
    "invite": {
        "event_id": "e1",
        "type": "registered",
        "inviter_id": "u1",
        "invitee_id": "u2",
        "channel": "link",
        "ts": NOW,
    },
    "member": {"user_id": "u1", "team_id": "t1", "joined_at": NOW - 86_400_000},
    "decision": {"event_id": "e1", "invitee_id": "u1", "decision": "approve", "ts": NOW},
}


def run(source: str, doc: object, key: bytes | None = b"u1", now_ms: int = NOW) -> Event:
    return decode(source, orjson.dumps(doc), key, now_ms=now_ms)


def reject(source: str, doc: object) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        run(source, doc)
    return info.value


def with_(source: str, **changes: Any) -> dict[str, Any]:
    return {**VALID[source], **changes}


def without(source: str, name: str) -> dict[str, Any]:
    doc = dict(VALID[source])
    del doc[name]
    return doc


# --- each type, minimal and full ---


def test_message_minimal() -> None:
    assert run("message", VALID["message"]) == Message("e1", "u1", "t1", "text", NOW)


def test_message_full() -> None:
    doc = with_("message", kind="voice", group_id="g1", reply_to_user_id="u2")
    assert run("message", doc) == Message("e1", "u1", "t1", "voice", NOW, "g1", "u2")


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_message_every_kind(kind: str) -> None:
    event = run("message", with_("message", kind=kind))
    assert isinstance(event, Message)
    assert event.kind == kind


def test_like_full() -> None:
    doc = with_("like", message_id="m1", group_id="g1")
    assert run("like", doc) == Like("e1", "u1", "t1", "u2", NOW, "m1", "g1")
    assert run("like", VALID["like"]) == Like("e1", "u1", "t1", "u2", NOW)


def test_login() -> None:
    assert run("login", VALID["login"]) == Login("e1", "u1", "t1", NOW)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"type": "vote"}, Activity("e1", "u1", "t1", "vote", NOW)),
        ({"type": "feed_view"}, Activity("e1", "u1", "t1", "feed_view", NOW)),
        (
            {"type": "group_created", "group_id": "g1", "invited_count": 3},
            Activity("e1", "u1", "t1", "group_created", NOW, group_id="g1", invited_count=3),
        ),
        (
            {"type": "group_created", "group_id": "g1", "invited_count": 0},
            Activity("e1", "u1", "t1", "group_created", NOW, group_id="g1", invited_count=0),
        ),
        (
            {"type": "thanks_card", "target_user_id": "u2", "note": "thank you!"},
            Activity("e1", "u1", "t1", "thanks_card", NOW, target_user_id="u2", note="thank you!"),
        ),
        (
            {"type": "thanks_card", "target_user_id": "u2", "note": ""},
            Activity("e1", "u1", "t1", "thanks_card", NOW, target_user_id="u2", note=""),
        ),
        (
            {"type": "thanks_card", "target_user_id": "u2"},
            Activity("e1", "u1", "t1", "thanks_card", NOW, target_user_id="u2"),
        ),
        (
            {"type": "quality_marked", "target_user_id": "u2"},
            Activity("e1", "u1", "t1", "quality_marked", NOW, target_user_id="u2"),
        ),
        (
            {"type": "vote", "group_id": "g1", "invited_count": None, "target_user_id": None, "note": None},
            Activity("e1", "u1", "t1", "vote", NOW, group_id="g1"),
        ),
    ],
)
def test_activity_types(extra: dict[str, Any], expected: Activity) -> None:
    assert run("activity", with_("activity", **extra)) == expected


def test_every_activity_type_is_covered() -> None:
    required: dict[str, dict[str, Any]] = {
        "group_created": {"group_id": "g", "invited_count": 1},
        "thanks_card": {"target_user_id": "u2"},
        "quality_marked": {"target_user_id": "u2"},
    }
    for kind in ACTIVITY_TYPES:
        event = run("activity", with_("activity", type=kind, **required.get(kind, {})))
        assert isinstance(event, Activity)
        assert event.type == kind


@pytest.mark.parametrize("kind", INVITE_TYPES)
def test_invite_every_type(kind: str) -> None:
    event = run("invite", with_("invite", type=kind))
    assert event == Invite("e1", kind, "u1", "u2", "link", NOW)
    assert isinstance(event, Invite)
    assert event.user_id == "u1"


def test_member() -> None:
    assert run("member", VALID["member"]) == Member("u1", "t1", NOW - 86_400_000)
    assert run("member", with_("member", joined_at=0)) == Member("u1", "t1", 0)


def test_events_are_slotted_and_hashable() -> None:
    # Not frozen: a frozen dataclass's __init__ costs ~6x a plain one (measured), on every event; no code
    # changes an event after decoding. Slots keep them small; equal events hash equal.
    event = run("login", VALID["login"])
    assert isinstance(event, Login)
    with pytest.raises(AttributeError):
        event.colour = "red"  # type: ignore[attr-defined]
    assert not hasattr(event, "__dict__")
    assert hash(event) == hash(run("login", VALID["login"]))


# --- tombstones ---


def test_member_tombstone_is_member_left() -> None:
    assert decode("member", None, b"u-42", now_ms=NOW) == MemberLeft("u-42")
    assert decode("member", None, "用户".encode(), now_ms=NOW) == MemberLeft("用户")


@pytest.mark.parametrize("key", [None, b""])
def test_member_tombstone_without_key(key: bytes | None) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode("member", None, key, now_ms=NOW)
    assert info.value.reason is Reason.MISSING_FIELD
    assert "tombstone has no key" in info.value.detail


def test_member_tombstone_key_not_utf8() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode("member", None, b"\xff\xfe", now_ms=NOW)
    assert info.value.reason is Reason.INVALID_VALUE


@pytest.mark.parametrize("source", [s for s in SOURCES if s != "member"])
def test_null_value_on_other_topics_is_not_json(source: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode(source, None, b"u1", now_ms=NOW)
    assert info.value.reason is Reason.NOT_JSON


def test_json_null_on_members_is_not_a_tombstone() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode("member", b"null", b"u1", now_ms=NOW)
    assert info.value.reason is Reason.NOT_OBJECT


# --- each reason ---


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"not json", b'{"a":1,}', b"NaN", b"\xff\xfe", b'"\\ud800"', b"1e400"]
)
def test_not_json(raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode("message", raw, b"u1", now_ms=NOW)
    assert info.value.reason is Reason.NOT_JSON
    assert info.value.detail.startswith("value is not JSON")


@pytest.mark.parametrize(("doc", "name"), [([], "array"), ("x", "string"), (1, "integer"), (None, "null")])
def test_not_object(doc: object, name: str) -> None:
    error = reject("login", doc)
    assert error.reason is Reason.NOT_OBJECT
    assert name in error.detail


@pytest.mark.parametrize("source", SOURCES)
def test_missing_each_required_field(source: str) -> None:
    for name in VALID[source]:
        error = reject(source, without(source, name))
        assert error.reason is Reason.MISSING_FIELD, name
        assert error.detail == f"field {name!r} is missing"


@pytest.mark.parametrize("source", SOURCES)
def test_null_required_field_is_missing(source: str) -> None:
    for name in VALID[source]:
        error = reject(source, with_(source, **{name: None}))
        assert error.reason is Reason.MISSING_FIELD, name
        assert error.detail == f"field {name!r} is null"


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"type": "group_created", "invited_count": 2}, "group_id"),
        ({"type": "group_created", "group_id": "g1"}, "invited_count"),
        ({"type": "group_created", "group_id": None, "invited_count": 2}, "group_id"),
        ({"type": "thanks_card"}, "target_user_id"),
        ({"type": "thanks_card", "target_user_id": None}, "target_user_id"),
        ({"type": "quality_marked", "note": "x"}, "target_user_id"),
    ],
)
def test_activity_required_by_type(extra: dict[str, Any], name: str) -> None:
    error = reject("activity", with_("activity", **extra))
    assert error.reason is Reason.MISSING_FIELD
    assert repr(name) in error.detail
    assert f"required when type is {extra['type']!r}" in error.detail


@pytest.mark.parametrize("bad", [1, 1.5, True, [], {}, ["u1"]])
@pytest.mark.parametrize("source", SOURCES)
def test_wrong_type_string_fields(source: str, bad: object) -> None:
    for name, value in VALID[source].items():
        if isinstance(value, str):
            error = reject(source, with_(source, **{name: bad}))
            assert error.reason is Reason.WRONG_TYPE, name
            assert error.detail.startswith(f"field {name!r} must be a string, got ")


@pytest.mark.parametrize("bad", [True, False, 3.0, 1.5, "1795000000000", [], {}])
@pytest.mark.parametrize("source", SOURCES)
def test_wrong_type_integer_fields(source: str, bad: object) -> None:
    name = "joined_at" if source == "member" else "ts"
    error = reject(source, with_(source, **{name: bad}))
    assert error.reason is Reason.WRONG_TYPE
    assert error.detail.startswith(f"field {name!r} must be an integer, got ")


def test_whole_float_detail_shows_the_number() -> None:
    assert reject("login", with_("login", ts=3.0)).detail == "field 'ts' must be an integer, got number 3.0"


@pytest.mark.parametrize(
    ("source", "name", "bad"),
    [
        ("message", "group_id", 1),
        ("message", "reply_to_user_id", ["u2"]),
        ("like", "message_id", False),
        ("like", "group_id", {}),
        ("activity", "group_id", 7),
        ("activity", "target_user_id", 7),
        ("activity", "invited_count", "3"),
        ("activity", "invited_count", 3.0),
        ("activity", "invited_count", True),
        ("activity", "note", 5),
    ],
)
def test_optional_field_with_wrong_type(source: str, name: str, bad: object) -> None:
    error = reject(source, with_(source, **{name: bad}))
    assert error.reason is Reason.WRONG_TYPE
    assert repr(name) in error.detail


@pytest.mark.parametrize("source", SOURCES)
def test_empty_id_is_invalid(source: str) -> None:
    for name, value in VALID[source].items():
        if isinstance(value, str) and name not in ("kind", "type", "decision"):
            error = reject(source, with_(source, **{name: ""}))
            assert error.reason is Reason.INVALID_VALUE, name
            assert error.detail == f"field {name!r} must not be empty"


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("message", "group_id"),
        ("message", "reply_to_user_id"),
        ("like", "message_id"),
        ("activity", "group_id"),
    ],
)
def test_empty_optional_id_is_invalid(source: str, name: str) -> None:
    assert reject(source, with_(source, **{name: ""})).reason is Reason.INVALID_VALUE


@pytest.mark.parametrize(
    ("source", "name", "value"),
    [
        ("login", "ts", -1),
        ("member", "joined_at", -1),
        ("activity", "invited_count", -1),
        ("login", "ts", MAX_INT + 1),
        ("member", "joined_at", 2**63),
        ("activity", "invited_count", MAX_INT + 1),
    ],
)
def test_out_of_range_integers_are_invalid(source: str, name: str, value: int) -> None:
    doc = with_(source, **{name: value})
    if source == "activity":
        doc.update(type="group_created", group_id="g1")
    error = reject(source, doc)
    assert error.reason is Reason.INVALID_VALUE
    assert repr(name) in error.detail


def test_integer_beyond_64_bits_is_wrong_type() -> None:
    # orjson reads it as a float; the schema rejects it too (above the maximum).
    raw = b'{"event_id":"e1","user_id":"u1","team_id":"t1","ts":36893488147419103232}'
    with pytest.raises(InvalidEvent) as info:
        decode("login", raw, None, now_ms=NOW)
    assert info.value.reason is Reason.WRONG_TYPE


@pytest.mark.parametrize("kind", ["sticker", "Text", "", " text"])
def test_unknown_message_kind(kind: str) -> None:
    error = reject("message", with_("message", kind=kind))
    assert error.reason is Reason.UNKNOWN_KIND
    assert "field 'kind'" in error.detail
    assert "text, voice, video, file, image" in error.detail


def test_unknown_kind_detail_is_clipped() -> None:
    error = reject("message", with_("message", kind="x" * 10_000))
    assert error.reason is Reason.UNKNOWN_KIND
    assert len(error.detail) < 200


@pytest.mark.parametrize(("source", "kind"), [("activity", "poll"), ("activity", ""), ("invite", "accepted")])
def test_unknown_type(source: str, kind: str) -> None:
    error = reject(source, with_(source, type=kind))
    assert error.reason is Reason.UNKNOWN_TYPE
    assert "field 'type'" in error.detail


def test_kind_of_wrong_type_is_wrong_type_not_unknown() -> None:
    assert reject("message", with_("message", kind=["text"])).reason is Reason.WRONG_TYPE
    assert reject("activity", with_("activity", type=1)).reason is Reason.WRONG_TYPE


@pytest.mark.parametrize("source", [s for s in SOURCES if s != "member"])
def test_future_ts(source: str) -> None:
    assert run(source, with_(source, ts=NOW + HOUR))  # exactly at the limit: fine
    error = reject(source, with_(source, ts=NOW + HOUR + 1))
    assert error.reason is Reason.FUTURE_TS
    assert "field 'ts'" in error.detail


def test_future_limit_is_configurable() -> None:
    raw = orjson.dumps(with_("login", ts=NOW + 10))
    assert decode("login", raw, None, now_ms=NOW, max_future_ms=10)
    with pytest.raises(InvalidEvent) as info:
        decode("login", raw, None, now_ms=NOW, max_future_ms=9)
    assert info.value.reason is Reason.FUTURE_TS


def test_joined_at_in_the_future_is_fine() -> None:
    assert run("member", with_("member", joined_at=NOW + 100 * HOUR)) == Member("u1", "t1", NOW + 100 * HOUR)


def test_old_ts_is_not_decodes_business() -> None:
    assert run("login", with_("login", ts=0)) == Login("e1", "u1", "t1", 0)


def test_first_bad_field_is_reported() -> None:
    doc = {"event_id": "", "user_id": 5, "kind": "sticker"}
    assert reject("message", doc).detail == "field 'event_id' must not be empty"


# --- extra fields, sources ---


@pytest.mark.parametrize("source", SOURCES)
def test_extra_fields_are_ignored(source: str) -> None:
    extra = {"client": "ios", "nested": {"a": [1, 2]}, "ts_ms": "x", "": None, "Event_ID": 5}
    assert run(source, {**VALID[source], **extra}) == run(source, VALID[source])


def test_unicode_ids_round_trip() -> None:
    doc = with_("message", user_id="用户-😀", team_id="团队")
    event = run("message", doc)
    assert isinstance(event, Message)
    assert (event.user_id, event.team_id) == ("用户-😀", "团队")


def test_duplicate_keys_last_wins() -> None:
    raw = b'{"event_id":"e1","user_id":"u1","team_id":"t1","ts":1,"ts":2}'
    assert decode("login", raw, None, now_ms=NOW) == Login("e1", "u1", "t1", 2)


def test_unknown_source_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown event source"):
        decode("messages", b"{}", None, now_ms=NOW)


def test_accepts_memoryview_and_bytearray() -> None:
    raw = orjson.dumps(VALID["login"])
    expected = decode("login", raw, None, now_ms=NOW)
    assert decode("login", memoryview(raw), None, now_ms=NOW) == expected  # type: ignore[arg-type]
    assert decode("login", bytearray(raw), None, now_ms=NOW) == expected  # type: ignore[arg-type]


def test_invalid_event_str_and_pickle() -> None:
    error = InvalidEvent(Reason.WRONG_TYPE, "field 'ts' must be an integer, got string")
    assert str(error) == "wrong_type: field 'ts' must be an integer, got string"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail) == (error.reason, error.detail)


# --- dead letters ---


def test_deadletter_text_value() -> None:
    raw = encode_deadletter("im.messages", 3, 42, b"u1", b'{"x":1}', Reason.WRONG_TYPE, "detail", NOW)
    assert orjson.loads(raw) == {
        "topic": "im.messages",
        "partition": 3,
        "offset": 42,
        "key": "u1",
        "value": '{"x":1}',
        "value_encoding": "utf-8",
        "value_size": 7,
        "truncated": False,
        "reason": "wrong_type",
        "detail": "detail",
        "ts": NOW,
    }


@pytest.mark.parametrize("size", [MAX_DEADLETTER_VALUE_BYTES + 1, 1_048_576, 5_000_000])
def test_deadletter_of_a_huge_value_is_bounded(size: int) -> None:
    value = b'{"note":"' + b"x" * size + b'"}'
    raw = encode_deadletter("im.activities", 2, 9, b"k" * size, value, Reason.TOO_LARGE, "d" * size, NOW)
    doc = orjson.loads(raw)
    assert len(raw) < 2 * MAX_DEADLETTER_VALUE_BYTES
    assert doc["truncated"] is True
    assert doc["value_size"] == len(value)
    assert doc["value"].encode() == value[:MAX_DEADLETTER_VALUE_BYTES]
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("im.activities", 2, 9)


def test_deadletter_cut_inside_a_character_stays_text() -> None:
    value = "é".encode() * MAX_DEADLETTER_VALUE_BYTES  # two bytes each: the cut may split one
    doc = orjson.loads(encode_deadletter("im.messages", 0, 0, None, b"x" + value, Reason.TOO_LARGE, "", NOW))
    assert doc["value_encoding"] == "utf-8"
    assert doc["truncated"] is True
    assert doc["value"] == "x" + "é" * ((MAX_DEADLETTER_VALUE_BYTES - 1) // 2)


def test_value_over_the_record_limit_is_too_large() -> None:
    doc = {**VALID["login"], "pad": "x" * MAX_RECORD_BYTES}
    with pytest.raises(InvalidEvent) as info:
        decode("login", orjson.dumps(doc), None, now_ms=NOW)
    assert info.value.reason is Reason.TOO_LARGE


@pytest.mark.parametrize("field", ["user_id", "event_id", "team_id"])
def test_id_over_the_length_limit_is_invalid(field: str) -> None:
    decode("login", orjson.dumps({**VALID["login"], field: "u" * MAX_ID_CHARS}), None, now_ms=NOW)
    with pytest.raises(InvalidEvent) as info:
        decode("login", orjson.dumps({**VALID["login"], field: "u" * (MAX_ID_CHARS + 1)}), None, now_ms=NOW)
    assert info.value.reason is Reason.INVALID_VALUE
    assert f"at most {MAX_ID_CHARS}" in info.value.detail


def test_deadletter_binary_value_and_key() -> None:
    value = b"\x00\xff\xfe binary"
    doc = orjson.loads(encode_deadletter("im.likes", 0, 0, b"u\xff", value, "not_json", "d", NOW))
    assert doc["value_encoding"] == "base64"
    assert base64.b64decode(doc["value"]) == value
    assert doc["key"] == "u\\xff"
    assert doc["reason"] == "not_json"


def test_deadletter_null_key_and_value() -> None:
    doc = orjson.loads(encode_deadletter("im.logins", 1, 2, None, None, Reason.NOT_JSON, "no value", NOW))
    assert (doc["key"], doc["value"], doc["value_encoding"]) == (None, None, "utf-8")


def test_deadletter_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError):
        encode_deadletter("im.logins", 1, 2, None, None, "bad_reason", "", NOW)


def test_deadletter_from_invalid_event() -> None:
    raw = b'{"event_id":"e1"}'
    with pytest.raises(InvalidEvent) as info:
        decode("login", raw, b"u1", now_ms=NOW)
    doc = orjson.loads(
        encode_deadletter("im.logins", 0, 7, b"u1", raw, info.value.reason, info.value.detail, NOW)
    )
    assert doc["reason"] == "missing_field"
    assert doc["detail"] == "field 'user_id' is missing"
    assert doc["value"].encode() == raw
