"""The invitation views read back real pipeline state: a user's invitations, what waits, the funnel, budgets.

The state comes from the invitation pipeline's simulated cluster (tests/unit/test_invite_pipeline.py):
every path writes what the workers would, and the views read it as the query API does.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from stream.domains.invitations import STAGES, budget_owner, part_award_id
from stream.pipeline import partition_for
from stream.runtime import invites_view
from tests.unit.api_examples import INVITES_FUNNEL, INVITES_PENDING
from tests.unit.test_invite_pipeline import D0, DAY, HOUR, PARTITIONS, Cluster

NOV = date(2026, 11, 1), date(2026, 11, 30)


def view(c: Cluster, user: str) -> dict[str, Any]:
    p = partition_for(user.encode(), PARTITIONS)
    return invites_view.user_invites(lambda k: c.cache.get(p, k), lambda k: c.cache.scan(p, k), user)


def waiting(c: Cluster) -> list[dict[str, Any]]:
    """Return what waits for an operator on every partition, as /invites/pending merges it."""
    rows = []
    for p in range(PARTITIONS):
        key = invites_view.held_key(c.pipeline.partition(p).prefix)
        rows.extend(invites_view.pending_rows(c.cache.get(p, key)))
    return invites_view.sort_pending(rows)


def funnel(c: Cluster, first: date, last: date) -> dict[str, Any]:
    """Return the funnel of registration days first..last over every partition, as /invites/funnel does."""
    total: dict[str, dict[str, int]] = {}
    for p in range(PARTITIONS):
        prefix = c.pipeline.partition(p).prefix
        local = invites_view.local_funnel(lambda k, p=p: c.cache.scan(p, k), prefix, first, last)  # type: ignore[misc]
        invites_view.add_funnel(total, local)
    return invites_view.funnel_view(total)


def test_pending_awards_name_their_award_ids_deadlines_and_what_they_wait_for() -> None:
    c = Cluster()
    c.register("alice", "bob", D0 + HOUR)
    c.login("bob", D0 + 2 * HOUR)  # the first halves activate; the rest wait for messages in groups
    alice, bob = view(c, "alice"), view(c, "bob")
    deadline = D0 + HOUR + 7 * DAY
    assert alice["pending"] == [
        {
            "award_id": part_award_id("bob", "i2", "pending"),
            "rule": "invite_inviter",
            "part": "i2",
            "points": 5,
            "invitee": "bob",
            "channel": "link",
            "deadline": deadline,
            "waiting_for": "activity",
        }
    ]
    assert [(a["part"], a["rule"], a["waiting_for"]) for a in bob["pending"]] == [
        ("w2", "invite_welcome", "activity")
    ]
    assert bob["pending"][0]["award_id"] == part_award_id("bob", "w2", "pending")
    assert bob["pending_points"] == 5
    # every pending id is an award the workers really emitted, still pending
    awards = c.awards()
    for pending in alice["pending"] + bob["pending"]:
        assert awards[pending["award_id"]]["status"] == "pending"
        assert part_award_id("bob", pending["part"], "activated") not in awards
    assert alice["invitees"] == [
        {
            "invitee": "bob",
            "channel": "link",
            "registered": D0 + HOUR,
            "status": "promised",
            "credited_number": 1,
            "parts": {"i1": {"points": 5, "status": "activated"}, "i2": {"points": 5, "status": "pending"}},
            "fully_activated": False,
            "taken_back": False,
            "reason": None,
        }
    ]
    assert bob["invitation"] == {
        "inviter": "alice",
        "channel": "link",
        "registered": D0 + HOUR,
        "status": "open",
        "deadline": deadline,
        "waiting_for_operator": None,
        "parts": {
            "i1": {"points": 5, "status": "activated"},
            "i2": {"points": 5, "status": "pending"},
            "w1": {"points": 5, "status": "activated"},
            "w2": {"points": 5, "status": "pending"},
        },
        "flagged": False,
        "retained": False,
        "rejected": False,
    }
    assert alice["invitation"] is None and bob["invitees"] == []


def test_a_first_login_waits_for_login_and_expiry_empties_the_pending_list() -> None:
    c = Cluster()
    c.register("alice", "bob", D0)
    assert [(a["part"], a["waiting_for"]) for a in view(c, "bob")["pending"]] == [
        ("w1", "login"),
        ("w2", "activity"),
    ]
    other = next(
        u
        for u in (f"x{i}" for i in range(100))
        if partition_for(u.encode(), PARTITIONS) == partition_for(b"bob", PARTITIONS)
    )
    c.login(other, D0 + 8 * DAY)  # the partition's event time passes the deadline
    bob = view(c, "bob")
    assert bob["pending"] == [] and bob["pending_points"] == 0
    assert {part["status"] for part in bob["invitation"]["parts"].values()} == {"expired"}
    assert view(c, "alice")["pending"] == []


def test_held_invitations_wait_for_an_operator_without_a_deadline_until_approved() -> None:
    c = Cluster(invites="{daily_limit: 1}")
    c.register("alice", "a", D0 + HOUR)
    c.register("alice", "b", D0 + 2 * HOUR, channel="poster")
    c.register("carol", "c", D0 + 3 * HOUR)
    c.register("carol", "d", D0 + HOUR)
    alice, b = view(c, "alice"), view(c, "b")
    held = [a for a in alice["pending"] if a["invitee"] == "b"]
    assert [(a["part"], a["deadline"], a["waiting_for"]) for a in held] == [
        ("i1", None, "operator"),
        ("i2", None, "operator"),
    ]
    assert [a["waiting_for"] for a in b["pending"]] == ["operator", "operator"]
    assert b["invitation"]["status"] == "held" and b["invitation"]["deadline"] is None
    assert b["invitation"]["waiting_for_operator"] == "daily_limit"
    # carol's second credited registration is d (it arrived second), though it happened first
    assert [row["invitee"] for row in waiting(c)] == ["d", "b"]  # by registration time
    assert waiting(c)[1] == {
        "invitee": "b",
        "inviter": "alice",
        "channel": "poster",
        "registered": D0 + 2 * HOUR,
        "reason": "daily_limit",
        "points": 20,
        "event_id": c.awards()[part_award_id("b", "w1", "pending")]["source_event_id"],  # the registration
    }
    c.decide("b", "approve", D0 + 5 * HOUR)
    c.decide("d", "reject", D0 + 5 * HOUR)
    assert [row["invitee"] for row in waiting(c)] == []
    b = view(c, "b")
    assert b["invitation"]["status"] == "open" and b["invitation"]["deadline"] == D0 + 5 * HOUR + 7 * DAY
    assert [(a["waiting_for"], a["deadline"]) for a in b["pending"]] == [
        ("login", D0 + 5 * HOUR + 7 * DAY),
        ("activity", D0 + 5 * HOUR + 7 * DAY),
    ]
    entries = {e["invitee"]: e["status"] for e in view(c, "alice")["invitees"] + view(c, "carol")["invitees"]}
    assert entries == {"a": "promised", "b": "promised", "c": "promised", "d": "closed"}
    d = view(c, "d")
    assert d["pending"] == [] and d["invitation"]["rejected"] is True and d["invitation"]["status"] == "final"


def test_full_activation_squad_second_level_and_fraud() -> None:
    c = Cluster()
    c.register("zed", "alice", D0)
    c.activate("alice", D0 + HOUR)
    for i in range(3):
        c.register("alice", f"s{i}", D0 + (2 + i) * HOUR)
        c.activate(f"s{i}", D0 + DAY + i * HOUR)
    alice = view(c, "alice")
    assert alice["squad"] is True and alice["fully_activated"] == 3 and alice["credited"] == 3
    assert [e["fully_activated"] for e in alice["invitees"]] == [True] * 3
    assert [e["credited_number"] for e in alice["invitees"]] == [1, 2, 3]
    assert view(c, "zed")["second_level"] == [
        {"invitee": f"s{i}", "status": "granted", "points": 2} for i in range(3)
    ]
    assert view(c, "zed")["squad"] is False
    c.invite("fraud_flagged", "alice", "s1", D0 + 3 * DAY)
    s1 = view(c, "s1")["invitation"]
    assert s1["flagged"] is True and s1["status"] == "final"
    entry = next(e for e in view(c, "alice")["invitees"] if e["invitee"] == "s1")
    assert entry["taken_back"] is True and entry["fully_activated"] is False
    assert {p["status"] for p in entry["parts"].values()} == {"revoked"}
    assert {"invitee": "s1", "status": "revoked", "points": 2} in view(c, "zed")["second_level"]


def test_rejected_registrations_say_why_and_a_user_without_invitations_has_empty_lists() -> None:
    c = Cluster()
    c.login("old", D0)
    c.register("alice", "old", D0 + HOUR)  # already an active user
    entry = view(c, "alice")["invitees"][0]
    assert (entry["status"], entry["reason"], entry["parts"]) == ("rejected", "already_registered", {})
    assert view(c, "old")["invitation"] is None
    nobody = view(c, "nobody")
    assert nobody == {
        "pending": [],
        "pending_points": 0,
        "credited": 0,
        "fully_activated": 0,
        "invitees": [],
        "invitation": None,
        "second_level": [],
        "squad": False,
    }
    p = partition_for(b"nobody", PARTITIONS)
    assert not invites_view.has_invites(lambda k: c.cache.get(p, k), lambda k: c.cache.scan(p, k), "nobody")
    q = partition_for(b"old", PARTITIONS)
    assert not invites_view.has_invites(lambda k: c.cache.get(q, k), lambda k: c.cache.scan(q, k), "old")


def test_a_fraud_flag_before_any_registration_is_no_invitation() -> None:
    c = Cluster()
    c.invite("fraud_flagged", "alice", "bob", D0)
    assert view(c, "bob")["invitation"] is None


def test_a_channel_switched_off_promises_no_award_to_wait_for() -> None:
    c = Cluster(invites="{channels: {spam: 0}}")
    c.invite("registered", "alice", "bob", D0, channel="spam")
    assert view(c, "alice")["pending"] == [] and view(c, "bob")["pending"] == []
    assert view(c, "alice")["invitees"][0]["parts"] == {
        "i1": {"points": 0, "status": "pending"},
        "i2": {"points": 0, "status": "pending"},
    }


def test_the_funnel_sums_partitions_per_channel_over_the_days_asked() -> None:
    c = Cluster()
    c.invite("invited", "alice", "bob", D0 - 2 * DAY, channel="poster")
    c.invite("invited", "alice", "bob", D0, channel="link")
    c.register("alice", "bob", D0 + HOUR)
    c.register("alice", "carol", D0 + DAY + HOUR, channel="poster")
    c.activate("bob", D0 + 2 * HOUR)
    c.activate("bob", D0 + 8 * DAY)  # retained: active on day 7 or later
    c.invite("fraud_flagged", "alice", "carol", D0 + 2 * DAY)
    nov = funnel(c, *NOV)
    assert list(nov["channels"]) == ["link", "poster"]
    link, poster = nov["channels"]["link"], nov["channels"]["poster"]
    assert set(link) == set(STAGES)
    assert (link["invited"], link["registered"], link["retained"], link["points_paid"]) == (1, 1, 1, 20)
    assert (link["activated_half"], link["activated_full"]) == (2, 1)
    assert (poster["invited"], poster["registered"], poster["flagged"], poster["points_paid"]) == (1, 1, 1, 0)
    assert nov["total"]["registered"] == 2 and nov["total"]["invited"] == 2
    # days are registration days, inclusive at both ends
    monday = date(2026, 11, 23)
    only_monday = funnel(c, monday, monday)["channels"]
    assert list(only_monday) == ["link"] and only_monday["link"]["registered"] == 1
    assert funnel(c, date(2026, 11, 21), date(2026, 11, 21))["channels"]["poster"]["invited"] == 1
    assert funnel(c, date(2026, 12, 1), date(2026, 12, 31)) == {
        "channels": {},
        "total": dict.fromkeys(STAGES, 0),
    }


def test_the_budget_view_reads_the_months_budget_key() -> None:
    c = Cluster(invites="{monthly_budget: 40}")
    for name in ("a", "b", "c"):
        c.register("alice", name, D0 + HOUR)
    key = budget_owner("2026-11")
    record = c.cache.get(partition_for(key, PARTITIONS), key)
    assert invites_view.budget_view(record, "2026-11", 40) == {
        "month": "2026-11",
        "budget": 40,
        "promised": 40,
        "burnt_ratio": 1.0,
        "reached": True,
        "reserved": 2,
        "refused": 1,
    }
    c.decide("c", "approve", D0 + 2 * HOUR)  # an approval reserves its points beyond the budget
    record = c.cache.get(partition_for(key, PARTITIONS), key)
    got = invites_view.budget_view(record, "2026-11", 40)
    assert (got["promised"], got["burnt_ratio"], got["reserved"], got["refused"]) == (60, 1.5, 3, 0)
    assert invites_view.budget_view(None, "2026-12", None) == {
        "month": "2026-12",
        "budget": None,
        "promised": 0,
        "burnt_ratio": None,
        "reached": False,
        "reserved": 0,
        "refused": 0,
    }
    assert invites_view.budget_view(None, "2026-12", 0)["burnt_ratio"] == 1.0


def test_parse_day_takes_only_iso_dates() -> None:
    assert invites_view.parse_day("2026-11-23") == date(2026, 11, 23)
    for bad in (None, "", "2026-11-31", "2026-1-05", "20261123", "2026-11-23T00:00", "tomorrow"):
        assert invites_view.parse_day(bad) is None


def test_the_cli_examples_have_the_shape_the_views_answer() -> None:
    c = Cluster(invites="{daily_limit: 0}")
    c.register("alice", "bob", D0)
    row = waiting(c)[0]
    assert all(set(example) == set(row) for example in INVITES_PENDING["pending"])
    view_ = funnel(c, *NOV)
    assert set(view_) | {"from", "to"} == set(INVITES_FUNNEL)
    for stages in INVITES_FUNNEL["channels"].values():
        assert set(stages) == set(view_["total"])
