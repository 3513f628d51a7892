"""Decode and validate input records into typed events.

This module is the Python twin of the input schemas in ``schemas/``: ``decode`` accepts a record exactly when
the schema of its topic does (``tests/unit/test_schemas_agree.py`` proves it), with two additions that JSON
Schema cannot express: a whole number written as a float (``3.0``) is not an integer, and a ``ts`` too far
ahead of the clock is rejected. It runs once per input record, so the happy path is one ``orjson.loads``,
one type test per field and one dataclass; error details are only built when a record fails.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeAlias

import orjson

MESSAGE_KINDS: Final = ("text", "voice", "video", "file", "image")
ACTIVITY_TYPES: Final = ("vote", "group_created", "thanks_card", "quality_marked", "feed_view")
INVITE_TYPES: Final = ("invited", "registered", "verified", "fraud_flagged")
DECISIONS: Final = ("approve", "reject")
SOURCES: Final = ("message", "like", "login", "activity", "invite", "member", "decision")

MAX_INT: Final = 2**53 - 1
"""Largest ``ts``, ``joined_at`` or ``invited_count`` accepted (JavaScript's largest exact integer)."""

DEFAULT_MAX_FUTURE_MS: Final = 3_600_000

MAX_ID_CHARS: Final = 256
"""Longest id accepted (``maxLength`` of the schemas): a longer one is ``invalid_value``."""

MAX_RECORD_BYTES: Final = 65_536
"""Largest input value accepted: a larger one is ``too_large`` (an IM event is a few hundred bytes)."""

_MESSAGE_KINDS: Final = frozenset(MESSAGE_KINDS)
_ACTIVITY_TYPES: Final = frozenset(ACTIVITY_TYPES)
_INVITE_TYPES: Final = frozenset(INVITE_TYPES)
_DECISIONS: Final = frozenset(DECISIONS)


class Reason(StrEnum):
    """Why a record went to the dead-letter topic; the values are the ``reason`` enum of its schema."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_TYPE = "unknown_type"
    FUTURE_TS = "future_ts"
    TOO_LATE = "too_late"
    TOO_LARGE = "too_large"
    MISROUTED = "misrouted"
    PROCESSING_ERROR = "processing_error"
    OUTPUT_REJECTED = "output_rejected"


class InvalidEvent(Exception):
    """Raised when a record is not a valid event; ``detail`` names the field, e.g. "field 'ts' is missing"."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs ~6x (measured)
class Message:
    """A message sent (``im.messages``)."""

    event_id: str
    user_id: str
    team_id: str
    kind: str
    ts: int
    group_id: str | None = None
    reply_to_user_id: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class Like:
    """A like given by ``user_id`` to ``target_user_id`` (``im.likes``)."""

    event_id: str
    user_id: str
    team_id: str
    target_user_id: str
    ts: int
    message_id: str | None = None
    group_id: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class Login:
    """A login (``im.logins``)."""

    event_id: str
    user_id: str
    team_id: str
    ts: int


@dataclass(slots=True, unsafe_hash=True)
class Activity:
    """A vote, group creation, thanks card, quality mark or feed view (``im.activities``).

    ``group_created`` always has ``group_id`` and ``invited_count``; ``thanks_card`` and ``quality_marked``
    always have ``target_user_id``; other fields are ``None`` when the record did not carry them.
    """

    event_id: str
    user_id: str
    team_id: str
    type: str
    ts: int
    group_id: str | None = None
    invited_count: int | None = None
    target_user_id: str | None = None
    note: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class Invite:
    """A step of the invitation funnel (``im.invites``); the acting user is the inviter."""

    event_id: str
    type: str
    inviter_id: str
    invitee_id: str
    channel: str
    ts: int

    @property
    def user_id(self) -> str:
        """Return the inviter, the user the record is keyed by."""
        return self.inviter_id


@dataclass(slots=True, unsafe_hash=True)
class InviteDecision:
    """An operator's decision on an invitation waiting for approval (``rewards.invite-decisions``)."""

    event_id: str
    invitee_id: str
    decision: str  # approve | reject
    ts: int
    operator: str | None = None

    @property
    def user_id(self) -> str:
        """Return the invitee, the user the record is keyed by (its invitation lives on its key)."""
        return self.invitee_id


@dataclass(slots=True, unsafe_hash=True)
class Member:
    """A roster entry: ``user_id`` is (now) in ``team_id`` (``im.members``)."""

    user_id: str
    team_id: str
    joined_at: int


@dataclass(slots=True, unsafe_hash=True)
class MemberLeft:
    """A roster tombstone: ``user_id`` left (``im.members`` record with a null value)."""

    user_id: str


Event: TypeAlias = Message | Like | Login | Activity | Invite | Member | MemberLeft | InviteDecision

_Doc: TypeAlias = dict[str, Any]


def decode(
    source: str,
    raw: bytes | None,
    key: bytes | None,
    *,
    now_ms: int,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> Event:
    """Decode one record's value into an event, or raise ``InvalidEvent`` saying why it is not one.

    ``source`` is the kind of topic the record came from (one of ``SOURCES``); an unknown one is a bug and
    raises ``ValueError``. ``key`` is only read for an ``im.members`` tombstone (``raw`` is ``None``), whose
    key is the user who left; a key that disagrees with the value's user id is not checked here. A ``ts``
    later than ``now_ms + max_future_ms`` is ``FUTURE_TS``; lateness (``TOO_LATE``) is the caller's business.
    Unknown fields are ignored. Never raises anything but ``InvalidEvent`` and, for an unknown ``source``,
    ``ValueError``.
    """
    decoder = _DECODERS.get(source)
    if decoder is None:
        raise ValueError(f"unknown event source {source!r}; expected one of {', '.join(SOURCES)}")
    if raw is None:
        if source == "member":
            return _member_left(key)
        raise InvalidEvent(Reason.NOT_JSON, "record has no value (null)")
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidEvent(
            Reason.TOO_LARGE, f"value is {len(raw)} bytes; at most {MAX_RECORD_BYTES} are accepted"
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(Reason.NOT_JSON, f"value is not JSON: {exc}") from None
    if type(doc) is not dict:
        raise InvalidEvent(Reason.NOT_OBJECT, f"value is a JSON {_json_type(doc)}, not an object")
    return decoder(doc, now_ms + max_future_ms)


# --- one decoder per source; arguments are evaluated left to right, so the first bad field is reported ---


def _message(d: _Doc, ts_limit: int) -> Message:
    return Message(
        _id(d, "event_id"),
        _id(d, "user_id"),
        _id(d, "team_id"),
        _enum(d, "kind", _MESSAGE_KINDS, MESSAGE_KINDS, Reason.UNKNOWN_KIND),
        _ts(d, ts_limit),
        _opt_id(d, "group_id"),
        _opt_id(d, "reply_to_user_id"),
    )


def _like(d: _Doc, ts_limit: int) -> Like:
    return Like(
        _id(d, "event_id"),
        _id(d, "user_id"),
        _id(d, "team_id"),
        _id(d, "target_user_id"),
        _ts(d, ts_limit),
        _opt_id(d, "message_id"),
        _opt_id(d, "group_id"),
    )


def _login(d: _Doc, ts_limit: int) -> Login:
    return Login(_id(d, "event_id"), _id(d, "user_id"), _id(d, "team_id"), _ts(d, ts_limit))


def _activity(d: _Doc, ts_limit: int) -> Activity:
    event_id = _id(d, "event_id")
    user_id = _id(d, "user_id")
    team_id = _id(d, "team_id")
    kind = _enum(d, "type", _ACTIVITY_TYPES, ACTIVITY_TYPES, Reason.UNKNOWN_TYPE)
    ts = _ts(d, ts_limit)
    if kind == "group_created":
        group_id: str | None = _id(d, "group_id", kind)
        invited_count: int | None = _count(d, "invited_count", kind)
    else:
        group_id = _opt_id(d, "group_id")
        invited_count = _opt_count(d, "invited_count")
    if kind == "thanks_card" or kind == "quality_marked":
        target_user_id: str | None = _id(d, "target_user_id", kind)
    else:
        target_user_id = _opt_id(d, "target_user_id")
    return Activity(event_id, user_id, team_id, kind, ts, group_id, invited_count, target_user_id, _note(d))


def _invite(d: _Doc, ts_limit: int) -> Invite:
    return Invite(
        _id(d, "event_id"),
        _enum(d, "type", _INVITE_TYPES, INVITE_TYPES, Reason.UNKNOWN_TYPE),
        _id(d, "inviter_id"),
        _id(d, "invitee_id"),
        _id(d, "channel"),
        _ts(d, ts_limit),
    )


def _decision(d: _Doc, ts_limit: int) -> InviteDecision:
    return InviteDecision(
        _id(d, "event_id"),
        _id(d, "invitee_id"),
        _enum(d, "decision", _DECISIONS, DECISIONS, Reason.UNKNOWN_TYPE),
        _ts(d, ts_limit),
        _opt_id(d, "operator"),
    )


def _member(d: _Doc, ts_limit: int) -> Member:
    return Member(_id(d, "user_id"), _id(d, "team_id"), _count(d, "joined_at"))


def _member_left(key: bytes | None) -> MemberLeft:
    if not key:
        raise InvalidEvent(Reason.MISSING_FIELD, "member tombstone has no key: cannot tell which user left")
    try:
        user_id = bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent(Reason.INVALID_VALUE, "member tombstone key is not UTF-8") from None
    return MemberLeft(user_id)


_DECODERS: Final[dict[str, Callable[[_Doc, int], Event]]] = {
    "message": _message,
    "like": _like,
    "login": _login,
    "activity": _activity,
    "invite": _invite,
    "member": _member,
    "decision": _decision,
}


# --- field readers: a fast check first, the error (and its detail) only built on failure ---


def _id(d: _Doc, name: str, required_by: str | None = None) -> str:
    v = d.get(name)
    if type(v) is str and v and len(v) <= MAX_ID_CHARS:
        return v
    raise _bad_id(d, name, v, required_by)


def _opt_id(d: _Doc, name: str) -> str | None:
    v = d.get(name)
    if v is None or (type(v) is str and v and len(v) <= MAX_ID_CHARS):
        return v
    raise _bad_id(d, name, v, None)


def _ts(d: _Doc, limit: int) -> int:
    v = d.get("ts")
    if type(v) is int and 0 <= v <= limit and v <= MAX_INT:
        return v
    if type(v) is int and 0 <= v <= MAX_INT:
        raise InvalidEvent(
            Reason.FUTURE_TS, f"field 'ts' is {v}, too far in the future (latest allowed {limit})"
        )
    raise _bad_int(d, "ts", v, None)


def _count(d: _Doc, name: str, required_by: str | None = None) -> int:
    v = d.get(name)
    if type(v) is int and 0 <= v <= MAX_INT:
        return v
    raise _bad_int(d, name, v, required_by)


def _opt_count(d: _Doc, name: str) -> int | None:
    v = d.get(name)
    if v is None or (type(v) is int and 0 <= v <= MAX_INT):
        return v
    raise _bad_int(d, name, v, None)


def _note(d: _Doc) -> str | None:
    v = d.get("note")
    if v is None or type(v) is str:
        return v
    raise InvalidEvent(Reason.WRONG_TYPE, f"field 'note' must be a string or null, got {_json_type(v)}")


def _enum(d: _Doc, name: str, allowed: frozenset[str], listed: tuple[str, ...], unknown: Reason) -> str:
    v = d.get(name)
    if type(v) is str and v in allowed:
        return v
    if v is None:
        raise _missing(d, name, None)
    if type(v) is not str:
        raise InvalidEvent(Reason.WRONG_TYPE, f"field {name!r} must be a string, got {_json_type(v)}")
    raise InvalidEvent(unknown, f"field {name!r} is {_clip(v)!r}; expected one of {', '.join(listed)}")


# --- error builders (slow path) ---


def _missing(d: _Doc, name: str, required_by: str | None) -> InvalidEvent:
    how = "is null" if name in d else "is missing"
    why = f" (required when type is {required_by!r})" if required_by else ""
    return InvalidEvent(Reason.MISSING_FIELD, f"field {name!r} {how}{why}")


def _bad_id(d: _Doc, name: str, v: object, required_by: str | None) -> InvalidEvent:
    if v is None:
        return _missing(d, name, required_by)
    if type(v) is not str:
        return InvalidEvent(Reason.WRONG_TYPE, f"field {name!r} must be a string, got {_json_type(v)}")
    if v:
        return InvalidEvent(
            Reason.INVALID_VALUE, f"field {name!r} is {len(v)} characters long; at most {MAX_ID_CHARS}"
        )
    return InvalidEvent(Reason.INVALID_VALUE, f"field {name!r} must not be empty")


def _bad_int(d: _Doc, name: str, v: object, required_by: str | None) -> InvalidEvent:
    if v is None:
        return _missing(d, name, required_by)
    if type(v) is not int:
        return InvalidEvent(Reason.WRONG_TYPE, f"field {name!r} must be an integer, got {_json_type(v)}")
    if v < 0:
        return InvalidEvent(Reason.INVALID_VALUE, f"field {name!r} must be >= 0, got {v}")
    return InvalidEvent(Reason.INVALID_VALUE, f"field {name!r} must be <= {MAX_INT}, got {v}")


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if type(v) is bool:
        return "boolean"
    if type(v) is int:
        return "integer"
    if type(v) is float:
        return f"number {v!r}" if v.is_integer() else "number"
    if type(v) is str:
        return "string"
    if type(v) is list:
        return "array"
    return "object"


def _clip(s: str, limit: int = 40) -> str:
    return s if len(s) <= limit else s[:limit] + "..."


# --- dead letters ---


MAX_DEADLETTER_VALUE_BYTES: Final = 16_384
"""Most bytes of the original value a dead letter carries; a larger value is cut (``truncated``)."""

MAX_DEADLETTER_KEY_BYTES: Final = 1_024
"""Most bytes of the original key a dead letter carries."""

MAX_DEADLETTER_DETAIL_CHARS: Final = 1_000


def encode_deadletter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: Reason | str,
    detail: str,
    now_ms: int,
) -> bytes:
    """Build the ``rewards.deadletter`` record for an input record that could not be processed.

    The value is kept as its UTF-8 text when it decodes, else as base64 (``value_encoding`` says which), so
    the original bytes can be recovered. A dead letter is bounded in size whatever the input: a value over
    ``MAX_DEADLETTER_VALUE_BYTES`` is cut to that many bytes (``truncated`` is true, ``value_size`` keeps
    the original size; topic, partition and offset locate the whole record). The key is UTF-8 text with
    undecodable bytes shown as ``\\xNN`` escapes, or null, cut the same way. ``reason`` must be a
    ``Reason`` value (``ValueError`` otherwise).
    """
    text: str | None
    encoding = "utf-8"
    size: int | None = None
    truncated = False
    if value is None:
        text = None
    else:
        value = bytes(value)
        size = len(value)
        if size > MAX_DEADLETTER_VALUE_BYTES:
            value, truncated = value[:MAX_DEADLETTER_VALUE_BYTES], True
        text, encoding = _text_or_base64(value, truncated)
    if key is not None and len(key) > MAX_DEADLETTER_KEY_BYTES:
        key, truncated = key[:MAX_DEADLETTER_KEY_BYTES], True
    return orjson.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": None if key is None else bytes(key).decode("utf-8", "backslashreplace"),
            "value": text,
            "value_encoding": encoding,
            "value_size": size,
            "truncated": truncated,
            "reason": Reason(reason).value,
            "detail": _clip(detail, MAX_DEADLETTER_DETAIL_CHARS),
            "ts": now_ms,
        }
    )


def _text_or_base64(value: bytes, truncated: bool) -> tuple[str, str]:
    """Return the value as UTF-8 text, or base64 when it is not UTF-8 (a cut character is dropped)."""
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(value) - 3 and exc.reason == "unexpected end of data":
            return value[: exc.start].decode("utf-8"), "utf-8"
    return base64.b64encode(value).decode("ascii"), "base64"
