"""Prove that stream.events and the schema files in schemas/ agree, and that the schema files are sound.

For every input topic, hypothesis generates valid documents, mutated ones (a field dropped, nulled, given a
wrong type, an unknown enum value, an empty id, a negative or too large number, an extra field) and random
ones, and checks that ``decode`` accepts a document exactly when the topic's JSON Schema does.

JSON Schema counts a whole float (``3.0``) as an integer and cannot say otherwise; the decoder does not. So
the oracle is the draft 2020-12 validator with a strict ``integer`` type, and the test also checks that it
gives the standard validator's answer on every document without a whole float, so that this is the only
difference (the schema descriptions tell producers about it).
"""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, validators
from jsonschema.protocols import Validator

from stream.events import (
    ACTIVITY_TYPES,
    DECISIONS,
    INVITE_TYPES,
    MAX_INT,
    MESSAGE_KINDS,
    SOURCES,
    InvalidEvent,
    MemberLeft,
    Reason,
    decode,
    encode_deadletter,
)
from stream.schemas import INPUT_TOPICS, OUTPUT_TOPICS, SCHEMA_DIR, TOPICS, load_schema

NOW = MAX_INT  # later than any valid ts, so FUTURE_TS never triggers

StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, instance: type(instance) is int
    ),
)


@cache
def standard(topic: str) -> Validator:
    return Draft202012Validator(load_schema(topic))


@cache
def strict(topic: str) -> Validator:
    validator: Validator = StrictValidator(load_schema(topic))
    return validator


# --- the fields of each input, as the brief and SPEC.md define them ---

ids = st.text(min_size=1, max_size=6)
epochs = st.integers(0, MAX_INT)

FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "message": {
        "event_id": ids,
        "user_id": ids,
        "team_id": ids,
        "kind": st.sampled_from(MESSAGE_KINDS),
        "ts": epochs,
        "group_id": ids,
        "reply_to_user_id": ids,
    },
    "like": {
        "event_id": ids,
        "user_id": ids,
        "team_id": ids,
        "target_user_id": ids,
        "ts": epochs,
        "message_id": ids,
        "group_id": ids,
    },
    "login": {"event_id": ids, "user_id": ids, "team_id": ids, "ts": epochs},
    "activity": {
        "event_id": ids,
        "user_id": ids,
        "team_id": ids,
        "type": st.sampled_from(ACTIVITY_TYPES),
        "ts": epochs,
        "group_id": ids,
        "invited_count": st.integers(0, MAX_INT),
        "target_user_id": ids,
        "note": st.text(max_size=6),
    },
    "invite": {
        "event_id": ids,
        "type": st.sampled_from(INVITE_TYPES),
        "inviter_id": ids,
        "invitee_id": ids,
        "channel": ids,
        "ts": epochs,
    },
    "member": {"user_id": ids, "team_id": ids, "joined_at": epochs},
    "decision": {
        "event_id": ids,
        "invitee_id": ids,
        "decision": st.sampled_from(DECISIONS),
        "ts": epochs,
        "operator": ids,
    },
}
OPTIONAL = {
    "decision": {"operator"},
    "message": {"group_id", "reply_to_user_id"},
    "like": {"message_id", "group_id"},
    "activity": {"group_id", "invited_count", "target_user_id", "note"},
}
REQUIRED_BY_ACTIVITY_TYPE = {
    "group_created": {"group_id", "invited_count"},
    "thanks_card": {"target_user_id"},
    "quality_marked": {"target_user_id"},
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
odd_values = st.one_of(
    json_values,
    st.integers(-(2**53), 2**53).map(float),  # whole floats: 3.0 is not an integer
    st.sampled_from(
        [0, -1, MAX_INT, MAX_INT + 1, 2**63, 2**64, -(2**63) - 1, "", " ", True, False, 0.0, -0.0]
    ),
    st.sampled_from(MESSAGE_KINDS + ACTIVITY_TYPES + INVITE_TYPES),
)


def known(source: str) -> list[str]:
    return sorted(FIELDS[source])


def extras(source: str) -> st.SearchStrategy[dict[str, Any]]:
    names = st.text(max_size=8).filter(lambda name: name not in FIELDS[source])
    return st.dictionaries(names, json_values, max_size=3)


@st.composite
def valid_docs(draw: st.DrawFn, source: str) -> dict[str, Any]:
    optional = OPTIONAL.get(source, set())
    doc: dict[str, Any] = {}
    for name, values in FIELDS[source].items():
        doc[name] = draw(values)
    if source == "activity":
        optional = optional - REQUIRED_BY_ACTIVITY_TYPE.get(doc["type"], set())
    for name in optional:
        how = draw(st.sampled_from(("absent", "null", "value")))
        if how == "absent":
            del doc[name]
        elif how == "null":
            doc[name] = None
    doc.update(draw(extras(source)))
    return doc


@st.composite
def mutated_docs(draw: st.DrawFn, source: str) -> dict[str, Any]:
    doc = draw(valid_docs(source))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(known(source)))
        how = draw(st.sampled_from(("drop", "null", "odd", "empty", "negative", "huge", "enum", "extra")))
        if how == "drop":
            doc.pop(name, None)
        elif how == "null":
            doc[name] = None
        elif how == "odd":
            doc[name] = draw(odd_values)
        elif how == "empty":
            doc[name] = ""
        elif how == "negative":
            doc[name] = draw(st.integers(max_value=-1))
        elif how == "huge":
            doc[name] = draw(st.integers(MAX_INT + 1, 2**66))
        elif how == "enum":
            doc[name] = draw(st.text(max_size=14))
        else:
            doc.update(draw(extras(source)))
    return doc


def random_docs(source: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = {name: st.one_of(values, odd_values) for name, values in FIELDS[source].items()}
    return st.fixed_dictionaries({}, optional=fields)


def documents(source: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(valid_docs(source), mutated_docs(source), random_docs(source))


def has_whole_float(doc: dict[str, Any]) -> bool:
    return any(type(value) is float and value.is_integer() for value in doc.values())


def check_agreement(source: str, doc: dict[str, Any]) -> bool:
    """Decode the document and compare with the schema; return whether it was valid."""
    topic = INPUT_TOPICS[source]
    expected = strict(topic).is_valid(doc)
    if not has_whole_float(doc):
        assert expected == standard(topic).is_valid(doc)
    raw = json.dumps(doc).encode()  # not orjson: it cannot write integers beyond 64 bits
    try:
        event = decode(source, raw, b"key", now_ms=NOW)
    except InvalidEvent as error:
        assert not expected, f"decode rejected a schema-valid document: {error}"
        assert error.reason in {
            Reason.MISSING_FIELD,
            Reason.WRONG_TYPE,
            Reason.INVALID_VALUE,
            Reason.UNKNOWN_KIND,
            Reason.UNKNOWN_TYPE,
        }
        assert error.detail.startswith("field '")
        return False
    assert expected, f"decode accepted a document the schema rejects: {event}"
    for name in FIELDS[source]:
        value = getattr(event, name)
        assert value == doc.get(name)
        assert type(value) is type(doc.get(name))
    return True


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decode_accepts_exactly_what_the_schema_accepts(source: str, data: st.DataObject) -> None:
    check_agreement(source, data.draw(documents(source)))


REPRESENTATIVES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.5,
    3.0,
    -0.0,
    MAX_INT,
    MAX_INT + 1,
    2**63,
    2**64,
    -(2**63) - 1,
    "",
    " ",
    "x",
    "unknown",
    [],
    {},
    ["x"],
    {"x": 1},
    *MESSAGE_KINDS,
    *ACTIVITY_TYPES,
    *INVITE_TYPES,
    *DECISIONS,
]


def single_mutations(source: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the document with each known field dropped, and set to each representative value in turn."""
    mutations = [doc, doc | {"extra": [1, {"x": None}]}]
    for name in known(source):
        mutations.append({k: v for k, v in doc.items() if k != name})
        mutations.extend(doc | {name: value} for value in REPRESENTATIVES)
    return mutations


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_single_mutation_agrees(source: str, data: st.DataObject) -> None:
    outcomes = [
        check_agreement(source, doc) for doc in single_mutations(source, data.draw(valid_docs(source)))
    ]
    assert outcomes[0] and outcomes[1] and not all(outcomes)


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_valid_documents_are_accepted(source: str, data: st.DataObject) -> None:
    assert check_agreement(source, data.draw(valid_docs(source)))


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=50, deadline=None)
@given(doc=json_values.filter(lambda value: not isinstance(value, dict)))
def test_non_objects_are_rejected_by_both(source: str, doc: object) -> None:
    assert not standard(INPUT_TOPICS[source]).is_valid(doc)
    with pytest.raises(InvalidEvent) as info:
        decode(source, json.dumps(doc).encode(), b"key", now_ms=NOW)
    assert info.value.reason is Reason.NOT_OBJECT


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)))
def test_arbitrary_bytes_only_raise_invalid_event(source: str, raw: bytes) -> None:
    try:
        decode(source, raw, b"key", now_ms=NOW)
    except InvalidEvent as error:
        assert error.detail


@pytest.mark.parametrize(
    ("source", "doc"),
    [
        ("login", {"event_id": "e", "user_id": "u", "team_id": "t", "ts": 5.0}),
        ("member", {"user_id": "u", "team_id": "t", "joined_at": 0.0}),
        (
            "activity",
            {"event_id": "e", "user_id": "u", "team_id": "t", "type": "group_created", "ts": 1}
            | {"group_id": "g", "invited_count": 2.0},
        ),
    ],
)
def test_the_one_known_difference_whole_floats(source: str, doc: dict[str, Any]) -> None:
    # JSON Schema's data model cannot tell 5.0 from 5; the decoder (and the schema descriptions) can.
    assert standard(INPUT_TOPICS[source]).is_valid(doc)
    assert not strict(INPUT_TOPICS[source]).is_valid(doc)
    with pytest.raises(InvalidEvent) as info:
        decode(source, json.dumps(doc).encode(), None, now_ms=NOW)
    assert info.value.reason is Reason.WRONG_TYPE


def test_member_tombstone_has_no_schema_value() -> None:
    # The schema describes the non-null value; a tombstone (no value) is a MemberLeft, keyed by the user.
    assert "tombstone" in load_schema("im.members")["description"]
    assert decode("member", None, b"u1", now_ms=NOW) == MemberLeft("u1")


# --- the enums and required fields are the same on both sides ---


def test_enums_agree() -> None:
    assert tuple(load_schema("im.messages")["properties"]["kind"]["enum"]) == MESSAGE_KINDS
    assert tuple(load_schema("im.activities")["properties"]["type"]["enum"]) == ACTIVITY_TYPES
    assert tuple(load_schema("im.invites")["properties"]["type"]["enum"]) == INVITE_TYPES
    assert load_schema("rewards.deadletter")["properties"]["reason"]["enum"] == [r.value for r in Reason]


@pytest.mark.parametrize("source", SOURCES)
def test_required_and_known_fields_agree(source: str) -> None:
    schema = load_schema(INPUT_TOPICS[source])
    assert set(schema["required"]) == set(FIELDS[source]) - OPTIONAL.get(source, set())
    assert set(schema["properties"]) == set(FIELDS[source])


# --- dead letters ---


@settings(max_examples=300, deadline=None)
@given(
    topic=st.text(min_size=1, max_size=20),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**63 - 1),
    key=st.one_of(st.none(), st.binary(max_size=20), st.text(max_size=20).map(str.encode)),
    value=st.one_of(st.none(), st.binary(max_size=60), st.text(max_size=60).map(str.encode)),
    reason=st.sampled_from(Reason),
    detail=st.text(max_size=80),
    now_ms=epochs,
)
def test_dead_letters_match_their_schema(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: Reason,
    detail: str,
    now_ms: int,
) -> None:
    record = orjson.loads(encode_deadletter(topic, partition, offset, key, value, reason, detail, now_ms))
    standard("rewards.deadletter").validate(record)
    if value is None:
        assert record["value"] is None
    elif record["value_encoding"] == "utf-8":
        assert record["value"].encode() == value
    else:
        assert base64.b64decode(record["value"]) == value
    if key is not None:
        assert record["key"] == key.decode("utf-8", "backslashreplace")


def test_dead_letter_of_a_real_rejection_matches_its_schema() -> None:
    raw = b'{"event_id": "e1", "user_id": "u1", "team_id": "t1", "kind": "sticker", "ts": 1}'
    with pytest.raises(InvalidEvent) as info:
        decode("message", raw, b"u1", now_ms=NOW)
    record = orjson.loads(
        encode_deadletter("im.messages", 0, 1, b"u1", raw, info.value.reason, info.value.detail, 2)
    )
    standard("rewards.deadletter").validate(record)
    assert record["reason"] == "unknown_kind"


# --- the output schemas ---

POINT = {
    "award_id": "a1",
    "user_id": "u1",
    "team_id": "t1",
    "points": 5,
    "rule": "daily_login",
    "status": "granted",
    "period": "2026-11-23",
    "source_event_id": "e1",
    "rules_version": "1",
    "reason": "first login of the day",
    "ts": 1_795_000_000_000,
}
BADGE = {
    "award_id": "b1",
    "user_id": "u1",
    "team_id": "t1",
    "badge": "communicator",
    "kind": "level",
    "level": "communicator",
    "source_event_id": "e1",
    "rules_version": "1",
    "ts": 1_795_000_000_000,
}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"status": "pending", "rule": "invite_inviter", "period": "lifetime"},
        {"status": "activated", "activates": "a0", "period": "2026-W48"},
        {"status": "expired", "expires": "a0", "period": "2026-11"},
        {"status": "revoked", "points": -5, "revokes": "a0"},
    ],
)
def test_point_awards_valid(changes: dict[str, Any]) -> None:
    standard("rewards.points").validate(POINT | changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "revoked", "points": -5},  # must name what it revokes
        {"status": "activated"},  # must name what it activates
        {"status": "cancelled"},
        {"points": 1.5},
        {"period": "23/11/2026"},
        {"award_id": ""},
        {"extra": 1},  # outputs have exactly their fields
        {"revokes": None},
    ],
)
def test_point_awards_invalid(changes: dict[str, Any]) -> None:
    assert not standard("rewards.points").is_valid(POINT | changes)


@pytest.mark.parametrize("missing", sorted(POINT))
def test_point_award_required_fields(missing: str) -> None:
    assert not standard("rewards.points").is_valid({k: v for k, v in POINT.items() if k != missing})


@pytest.mark.parametrize(
    ("changes", "valid"),
    [
        ({}, True),
        ({"kind": "achievement", "badge": "messages_1000"}, True),
        ({"kind": "task", "badge": "daily_messages", "period": "2026-11-23"}, True),
        ({"kind": "title", "badge": "mvp", "period": "2026-W48"}, True),
        ({"kind": "task", "badge": "daily_messages"}, False),  # a task names its period
        ({"kind": "level", "level": None}, False),
        ({"kind": "medal"}, False),
        ({"team": "t1"}, False),
    ],
)
def test_badges(changes: dict[str, Any], valid: bool) -> None:
    assert standard("rewards.badges").is_valid(BADGE | changes) is valid


def test_the_engines_awards_match_their_schemas() -> None:
    from zoneinfo import ZoneInfo

    from stream.core.state import MemoryStore, StateCache
    from stream.engine.layout import decode_value, encode_value
    from stream.engine.periods import Calendar
    from stream.engine.processor import Engine
    from stream.events import Activity, Login, Message
    from stream.rules import load_rules
    from stream.rules.versions import RuleBook

    engine = Engine(RuleBook.of(load_rules(), ZoneInfo("Asia/Shanghai")), Calendar("Asia/Shanghai"))
    cache = StateCache(MemoryStore(), decode_value, encode_value)
    t = 1_795_363_200_000 + 12 * 3_600_000
    events = [Login("in1", "u1", "t1", t), Activity("v1", "u1", "t1", "vote", t + 1)]
    events += [Message(f"m{i}", "u1", "t1", "file", t + 2 + i, None, "u2") for i in range(100)]
    points, badges = [], []
    for event in events:
        tx = cache.begin(0)
        out = engine.apply(event, tx, b"u1")
        tx.commit()
        points += [award.to_record() for award in out.points]
        badges += [badge.to_record() for badge in out.badges]
    assert {b["kind"] for b in badges} == {"task", "level"}
    for record in points:
        standard("rewards.points").validate(record)
    for record in badges:
        standard("rewards.badges").validate(record)


def test_level_badge_names_its_level() -> None:
    assert not standard("rewards.badges").is_valid({k: v for k, v in BADGE.items() if k != "level"})


# --- the schema files themselves ---


def test_every_topic_has_exactly_one_schema_file() -> None:
    assert sorted(path.name for path in SCHEMA_DIR.glob("*.json")) == sorted(
        f"{t}.schema.json" for t in TOPICS
    )


@pytest.mark.parametrize("topic", TOPICS)
def test_schema_files_are_valid_documented_schemas(topic: str) -> None:
    schema = load_schema(topic)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{topic}.schema.json")
    assert schema["title"]
    assert topic in schema["description"]
    assert schema["type"] == "object"
    for name, spec in schema["properties"].items():
        assert spec.get("description"), f"{topic}: property {name!r} has no description"
    assert schema["additionalProperties"] is (topic not in OUTPUT_TOPICS)


@pytest.mark.parametrize("topic", TOPICS)
def test_schema_files_are_plain_json(topic: str) -> None:
    # One canonical form: the file parses with a strict parser and has no duplicate keys.
    text = (SCHEMA_DIR / f"{topic}.schema.json").read_text(encoding="utf-8")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), f"duplicate keys in {topic}: {names}"
        return dict(pairs)

    assert json.loads(text, object_pairs_hook=no_duplicates) == orjson.loads(text)


def test_output_field_sets() -> None:
    points = load_schema("rewards.points")
    assert set(points["properties"]) == set(POINT) | {"revokes", "activates", "expires"}
    assert set(points["required"]) == set(POINT)
    badges = load_schema("rewards.badges")
    assert set(badges["properties"]) == set(BADGE) | {"period"}
    assert set(badges["required"]) == set(BADGE) - {"level"}
    deadletter = load_schema("rewards.deadletter")
    fields = {"topic", "partition", "offset", "key", "value", "value_encoding", "value_size", "truncated"}
    fields |= {"reason", "detail", "ts"}
    assert set(deadletter["properties"]) == set(deadletter["required"]) == fields


def readme_examples() -> dict[str, Any]:
    """Return the README's example value of each topic: the json block under its ``### <topic>`` heading."""
    text = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"^### (\S+)\n\n```json\n(.*?)\n```", text, flags=re.MULTILINE | re.DOTALL)
    return {topic: json.loads(block) for topic, block in found}


def test_readme_lists_every_topic_with_a_valid_example() -> None:
    examples = readme_examples()
    assert sorted(examples) == sorted(TOPICS)
    for topic, example in examples.items():
        standard(topic).validate(example)
    for source, topic in INPUT_TOPICS.items():
        decode(source, json.dumps(examples[topic]).encode(), None, now_ms=NOW)
    dead = examples["rewards.deadletter"]
    with pytest.raises(InvalidEvent) as info:
        decode("message", dead["value"].encode(), None, now_ms=NOW)
    assert (info.value.reason.value, info.value.detail) == (dead["reason"], dead["detail"])
