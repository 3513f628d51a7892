"""The internal topic's typed messages survive their JSON round trip; malformed ones raise."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.domains.messages import (
    Close,
    Grant,
    GroupCount,
    GroupWon,
    Report,
    RosterChange,
    TeamCount,
    parse_internal,
)

ids = st.text(min_size=1, max_size=12)
ms = st.integers(0, 2**45)
messages = st.one_of(
    st.builds(GroupCount, ids, ids, st.integers(0, 63), st.integers(1, 10**6), ms, ms),
    st.builds(TeamCount, ids, ids, st.integers(0, 63), st.integers(1, 10**6), ms),
    st.builds(RosterChange, ids, ids, st.integers(0, 10**9), st.none() | ms),
    st.builds(GroupWon, ids, ids, ids, ids, ids, ms),
    st.builds(
        Grant, ids, ids, ids, st.sampled_from(["week", "month"]), ids, ms, ms, st.integers(0, 500),
        st.none() | ids, st.none() | st.just("title"), ids, ids,
    ),
)  # fmt: skip


@given(messages)
def test_a_message_survives_its_round_trip(message: object) -> None:
    assert parse_internal(orjson.loads(orjson.dumps(message.to_record()))) == message  # type: ignore[attr-defined]


def test_close_and_report_round_trip() -> None:
    close = parse_internal(orjson.loads(orjson.dumps(Close("2026-W48", 3, 1).to_record())))
    assert close == Close("2026-W48", 3, -1)  # the receiver is the partition it is read on
    report = Report("mvc", "2026-W48", 2, {"2026-W48": [["u1", 3, 10]]})
    assert parse_internal(orjson.loads(orjson.dumps(report.to_record()))) == report


def test_other_envelopes_are_not_typed_messages() -> None:
    assert parse_internal({"credit": {"user_id": "u1"}}) is None
    assert parse_internal({"topic": "t", "partition": 0, "offset": 1, "raw": ""}) is None


@pytest.mark.parametrize("body", [{"gc": [1, 2]}, {"gr": "x"}, {"ro": ["t", "u", "v", None]}])
def test_a_malformed_message_raises(body: dict[str, object]) -> None:
    with pytest.raises((KeyError, ValueError, TypeError)):
        parse_internal(body)
