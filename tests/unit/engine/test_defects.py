"""Defects fixed by the rewrite, kept fixed: a credit never writes the sender's team into the receiver's state."""

from __future__ import annotations

from stream.engine.processor import APPLIED
from tests.unit.support import NOON, Harness, act, credit, like, member, msg, paid


def test_a_credit_to_a_user_with_no_events_keeps_the_receivers_team_unknown() -> None:
    h = Harness()
    out = h.apply(act("u1", "thanks_card", NOON, target="u2", team="t-sender"))
    (received,) = h.deliver(out)
    assert received.status == APPLIED
    assert paid(received) == [("thanks_received", 20)]
    assert received.points[0].team_id == "t-sender"  # the sender's team, in the award only, as a fallback
    core = h.core("u2")
    assert core["team"] is None and core["roster"] is None
    h.flush()
    assert b'"team":null' in (h.store.get(0, b"u2\x00core") or b"")


def test_many_credits_from_other_teams_never_set_the_team() -> None:
    h = Harness()
    for i, team in enumerate(("ta", "tb", "tc")):
        out = h.apply(like(f"s{i}", "u2", NOON + i, team=team))
        (received,) = h.deliver(out)
        assert received.status == APPLIED
        assert h.core("u2")["team"] is None
    out = h.apply(credit("u2", "quality_marked", NOON + 10, team="td"))
    assert [(a.rule, a.team_id) for a in out.points] == [("quality_bonus", "td")]
    assert h.core("u2")["team"] is None


def test_a_later_own_event_sets_the_team_and_later_credits_carry_it() -> None:
    h = Harness()
    h.apply(credit("u2", "thanks_card", NOON, team="t-sender"))
    own = h.apply(msg("u2", NOON + 1, team="t-own"))
    assert [a.team_id for a in own.points] == ["t-own"]
    assert h.core("u2")["team"] == "t-own"
    out = h.apply(credit("u2", "thanks_card", NOON + 2, team="t-sender"))
    assert [(a.rule, a.team_id) for a in out.points] == [("thanks_received", "t-own")]
    assert h.core("u2")["team"] == "t-own"


def test_a_rostered_receiver_gets_its_roster_team_on_a_credit() -> None:
    h = Harness()
    h.apply(member("u2", "t-roster"))
    out = h.apply(credit("u2", "thanks_card", NOON, team="t-sender"))
    assert [(a.rule, a.team_id) for a in out.points] == [("thanks_received", "t-roster")]
    core = h.core("u2")
    assert core["team"] is None and core["roster"][0] == "t-roster"
    h.apply(msg("u2", NOON + 1, team="t-own"))
    assert h.core("u2")["team"] == "t-own"
    out = h.apply(credit("u2", "thanks_card", NOON + 2, team="t-sender"))
    assert [a.team_id for a in out.points] == ["t-own"]  # its own events' team comes first
