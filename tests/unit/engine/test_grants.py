"""A user's side of what other keys decide: grants (challenges, titles), roster changes, the ledger."""

from __future__ import annotations

from typing import Any

from stream.domains.messages import Grant, RosterChange
from stream.engine import ledger
from stream.engine.processor import DUPLICATE, TOO_LATE
from stream.engine.view import ledger_view, user_view
from stream.events import Member, MemberLeft
from tests.unit.support import D0, DAY, NOON, Harness, msg

WEEK_START = D0  # Monday 2026-11-23 00:00 in Shanghai


def grant(user: str = "u1", **extra: Any) -> Grant:
    fields: dict[str, Any] = {
        "user": user,
        "rule": "group_weekly_500",
        "identity": "g1",
        "per": "week",
        "period": "2026-W48",
        "period_start_ms": WEEK_START,
        "period_end_ms": WEEK_START + 7 * DAY,
        "points": 50,
        "badge": None,
        "kind": None,
        "version": "2026-11-23.1",
        "reason": "the group reached 500 interactions this week (group g1, 2026-W48)",
        **extra,
    }
    return Grant(**fields)


def apply_grant(h: Harness, g: Grant) -> Any:
    tx = h.cache.begin(0)
    out = h.engine.grant(g, tx, g.user.encode())
    tx.commit()
    return out


def test_a_grant_pays_once_and_counts_in_the_balance_and_the_week() -> None:
    h = Harness()
    h.apply(msg("u1", NOON))
    out = apply_grant(h, grant())
    [award] = out.points
    assert (award.points, award.rule, award.period, award.ts, award.source_event_id) == (
        50, "group_weekly_500", "2026-W48", WEEK_START, "group_weekly_500:g1:2026-W48"
    )  # fmt: skip
    assert apply_grant(h, grant()).status == DUPLICATE
    assert h.core("u1")["points"] == 2 + 50
    week = h.record("u1", "w:2026-W48")
    assert week is not None and week["+p"] == 50


def test_a_title_grant_is_a_badge_kept_on_the_user() -> None:
    h = Harness()
    h.apply(msg("u1", NOON))
    out = apply_grant(h, grant(rule="mvc", identity="mvc", points=0, badge="mvc", kind="title", reason="mvc"))
    assert out.points == [] and [(b.badge, b.kind, b.period) for b in out.badges] == [
        ("mvc", "title", "2026-W48")
    ]
    view = user_view(lambda k: h.cache.get(0, k), b"u1", h.book.latest, h.engine.calendar)
    assert view is not None and {"badge": "mvc", "kind": "title", "period": "2026-W48"} in view["badges"]


def test_a_grant_of_a_period_past_the_retention_is_too_late() -> None:
    h = Harness()
    h.apply(msg("u1", NOON + 60 * DAY))
    assert apply_grant(h, grant()).status == TOO_LATE


def test_a_grant_reaching_a_level_awards_its_badge() -> None:
    h = Harness()
    out = apply_grant(h, grant(points=1000))
    assert [(b.badge, b.kind) for b in out.badges] == [("communicator", "level")]


def test_roster_changes_go_to_the_teams_and_a_redelivery_sends_nothing() -> None:
    h = Harness()
    out = h.apply(Member("u1", "T1", D0))
    assert [(m.team, m.user, m.joined_at) for m in out.messages if isinstance(m, RosterChange)] == [
        ("T1", "u1", D0)
    ]
    assert not h.apply(Member("u1", "T1", D0)).messages
    moved = h.apply(Member("u1", "T2", D0 + DAY))
    assert [(m.team, m.joined_at) for m in moved.messages] == [("T1", None), ("T2", D0 + DAY)]
    left = h.apply(MemberLeft("u1"))
    assert [(m.team, m.joined_at) for m in left.messages] == [("T2", None)]
    assert not h.apply(MemberLeft("u1")).messages


def test_the_ledger_keeps_the_latest_awards_newest_first() -> None:
    h = Harness()
    for i in range(ledger.LIMIT + 7):
        out = h.apply(msg("u1", NOON + i * 1000, "file"))
        tx = h.cache.begin(0)  # as the pipeline does, at the end of each batch
        ledger.append(tx, b"u1\x00", tx.edit(b"u1\x00core"), [*out.points, *out.badges])
        tx.commit()
    latest = ledger_view(lambda k: h.cache.get(0, k), b"u1", ledger.LIMIT)
    assert latest is not None and len(latest) == ledger.LIMIT
    assert [entry["ts"] for entry in latest] == sorted((entry["ts"] for entry in latest), reverse=True)
    assert latest[0]["ts"] == NOON + (ledger.LIMIT + 6) * 1000
    assert {entry["reason"] for entry in latest if entry.get("rule") == "message_file"} == {"file posted"}
    assert ledger_view(lambda k: h.cache.get(0, k), b"nobody", 5) is None
