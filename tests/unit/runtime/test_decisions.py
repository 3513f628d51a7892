"""An operator's decision record: what ``stream invites approve|reject`` sends, and its failures.

Sending to the real broker is tested in tests/e2e/test_invites_cli.py.
"""

from __future__ import annotations

import time
import uuid

import pytest
from jsonschema import Draft202012Validator

from stream.runtime.decisions import (
    EXIT_UNAVAILABLE,
    DecisionError,
    decision_record,
    default_operator,
    send_decision,
)
from stream.schemas import load_schema
from stream.settings import Settings

SCHEMA = Draft202012Validator(load_schema("rewards.invite-decisions"))


@pytest.mark.parametrize("decision", ["approve", "reject"])
@pytest.mark.parametrize("operator", ["ops-anna", None])
def test_the_record_follows_the_topics_schema(decision: str, operator: str | None) -> None:
    record = decision_record("u000913", decision, operator, 1_795_374_000_000)
    SCHEMA.validate(record)
    assert record == {
        "event_id": record["event_id"],
        "invitee_id": "u000913",
        "decision": decision,
        "ts": 1_795_374_000_000,
        "operator": operator,
    }
    assert uuid.UUID(record["event_id"]).version == 4
    assert decision_record("u1", decision, None, 0)["event_id"] != record["event_id"]  # one id a decision


def test_an_unknown_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="approve, reject"):
        decision_record("u1", "maybe", None, 0)


def test_the_default_operator_is_the_login_name_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ops-anna")
    assert default_operator() == "ops-anna"


def test_kafka_not_answering_is_exit_3_naming_the_brokers() -> None:
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(DecisionError, match=r"no answer from Kafka at 127\.0\.0\.1:1") as caught:
        send_decision(settings, decision_record("u1", "approve", None, 0), timeout_s=1.0)
    assert caught.value.exit_code == EXIT_UNAVAILABLE
    assert time.monotonic() - started < 10
