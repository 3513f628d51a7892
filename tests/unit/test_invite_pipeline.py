"""Invitation rewards through the pipeline: a cluster of partitions whose internal topic is simulated.

Every path of seed 002: activation in halves, expiry by the partition's event time, fraud clawback,
tiers, the second level, the squad, the daily limit with an operator's decisions, the budget, arrival
out of order; and, for any delivery order of the internal topic, the same awards.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.domains.invitations import part_award_id
from stream.engine.layout import decode_value
from stream.engine.periods import Calendar
from stream.engine.processor import Engine
from stream.pipeline import Pipeline, Record, Topics, partition_for
from stream.rules.versions import RuleBook
from tests.unit.cluster import SimulatedCluster
from tests.unit.support import parse

TZ = "Asia/Shanghai"
HOUR = 3_600_000
DAY = 86_400_000
D0 = 1_795_363_200_000  # Monday 2026-11-23 00:00 in Shanghai (2026-W48)
PARTITIONS = 4

BASE = """
    counters:
      logins_day: {fact: login, per: day}
    rules:
      daily_login: {counter: logins_day, threshold: 1, points: 5}
      message_text: {fact: message, where: {kind: text}, points: 2}
"""

TOPICS = Topics(
    sources={
        "src.messages": "message",
        "src.logins": "login",
        "src.invites": "invite",
        "src.decisions": "decision",
    },
    routed="int.routed",
    points="out.points",
    badges="out.badges",
    deadletter="out.dead",
)


def rules(invites: str = "") -> Any:
    return parse(BASE + (f"    invites: {invites}\n" if invites else ""))


class Cluster(SimulatedCluster):
    """The cluster of tests/unit/cluster.py with the invitation topics and events."""

    def __init__(self, invites: str = "", seed: int | None = None) -> None:
        store, self.cache = self.state()
        pipeline = Pipeline(
            Engine(RuleBook.of(rules(invites), ZoneInfo(TZ)), Calendar(TZ)),
            TOPICS,
            PARTITIONS,
            lambda: D0 + 60 * DAY,
            self.cache,
        )
        super().__init__(pipeline, store, TOPICS, D0, seed)
        self.ids = itertools.count()

    # --- feeding ------------------------------------------------------------------------------------

    def feed(self, topic: str, key: str, doc: dict[str, Any], settle: bool = True) -> None:
        raw = key.encode()
        record = Record(topic, partition_for(raw, PARTITIONS), next(self.offsets), raw, orjson.dumps(doc), D0)
        self._run([record])
        if settle:
            self.settle()

    def invite(
        self, kind: str, inviter: str, invitee: str, ts: int, channel: str = "link", **kw: Any
    ) -> None:
        doc = {"event_id": f"i{next(self.ids)}", "type": kind, "inviter_id": inviter, "invitee_id": invitee}
        self.feed("src.invites", inviter, {**doc, "channel": channel, "ts": ts}, **kw)

    def register(self, inviter: str, invitee: str, ts: int, **kw: Any) -> None:
        self.invite("registered", inviter, invitee, ts, **kw)

    def login(self, user: str, ts: int, **kw: Any) -> None:
        doc = {"event_id": f"l{next(self.ids)}", "user_id": user, "team_id": "t1", "ts": ts}
        self.feed("src.logins", user, doc, **kw)

    def message(self, user: str, ts: int, group: str | None = "g1", **kw: Any) -> None:
        doc = {"event_id": f"m{next(self.ids)}", "user_id": user, "team_id": "t1", "kind": "text", "ts": ts}
        if group is not None:
            doc["group_id"] = group
        self.feed("src.messages", user, doc, **kw)

    def activate(self, user: str, ts: int) -> None:
        """Log in, then send 10 messages in 2 groups (both halves' conditions)."""
        self.login(user, ts)
        for i in range(10):
            self.message(user, ts + (i + 1) * 1000, group=f"g{i % 2}")

    def decide(self, invitee: str, decision: str, ts: int) -> None:
        doc = {"event_id": f"d{next(self.ids)}", "invitee_id": invitee, "decision": decision, "ts": ts}
        self.feed("src.decisions", invitee, doc)

    def invite_awards(self, user: str | None = None) -> list[tuple[str, str, str, int]]:
        """Return (user, rule, status, points) of the invitation awards, sorted."""
        return sorted(
            (a["user_id"], a["rule"], a["status"], a["points"])
            for a in self.awards().values()
            if a.get("rule", "").startswith("invite_") and (user is None or a["user_id"] == user)
        )

    def balance(self, user: str) -> int:
        """Return the balance per SPEC: granted + activated + revoked, each award id once."""
        return sum(
            a["points"]
            for a in self.awards().values()
            if a["user_id"] == user and a.get("status") in ("granted", "activated", "revoked")
        )

    def invite_balance(self, user: str) -> int:
        return sum(
            a["points"]
            for a in self.awards().values()
            if a["user_id"] == user
            and a.get("rule", "").startswith("invite_")
            and a.get("status") in ("granted", "activated", "revoked")
        )

    def core(self, user: str) -> dict[str, Any]:
        raw = self.store.get(partition_for(user.encode(), PARTITIONS), user.encode() + b"\x00core")
        assert raw is not None
        value: dict[str, Any] = decode_value(b"core", raw)
        return value

    def badges(self, user: str) -> list[str]:
        return sorted(a["badge"] for a in self.awards().values() if a["user_id"] == user and "badge" in a)


def pending(user: str, rule: str, points: int) -> tuple[str, str, str, int]:
    return (user, rule, "pending", points)


# --- the paths --------------------------------------------------------------------------------------------


def test_fully_activated_pays_both_halves_of_both_rewards() -> None:
    c = Cluster()
    c.register("alice", "bob", D0 + HOUR)
    assert c.invite_awards() == sorted(
        [pending("alice", "invite_inviter", 5)] * 2 + [pending("bob", "invite_welcome", 5)] * 2
    )
    c.activate("bob", D0 + 2 * HOUR)
    statuses = [(user, rule, status) for user, rule, status, _ in c.invite_awards() if status == "activated"]
    assert sorted(statuses) == sorted(
        [("alice", "invite_inviter", "activated")] * 2 + [("bob", "invite_welcome", "activated")] * 2
    )
    assert c.invite_balance("alice") == 10 and c.invite_balance("bob") == 10
    for user in ("alice", "bob"):
        assert c.core(user)["points"] == c.balance(user)
    activation = c.awards()[part_award_id("bob", "i1", "activated")]
    assert activation["activates"] == part_award_id("bob", "i1", "pending")
    assert activation["ts"] == D0 + 2 * HOUR  # the first login's event time


def test_half_activated_then_expired_by_the_partitions_event_time() -> None:
    c = Cluster()
    c.register("alice", "bob", D0 + HOUR)
    c.login("bob", D0 + 2 * HOUR)
    assert c.invite_balance("bob") == 5
    # bob never comes back; another user of bob's partition moves its event time past the deadline
    other = next(
        u
        for u in (f"x{i}" for i in range(100))
        if partition_for(u.encode(), PARTITIONS) == partition_for(b"bob", PARTITIONS)
    )
    c.login(other, D0 + HOUR + 7 * DAY + 30 * 60_000)  # within the grace: nothing yet
    assert not [a for a in c.invite_awards() if a[2] == "expired"]
    c.login(other, D0 + HOUR + 7 * DAY + 2 * HOUR)
    expired = sorted(a for a in c.invite_awards() if a[2] == "expired")
    assert expired == [("alice", "invite_inviter", "expired", 5), ("bob", "invite_welcome", "expired", 5)]
    lapse = c.awards()[part_award_id("bob", "w2", "expired")]
    assert lapse["expires"] == part_award_id("bob", "w2", "pending") and lapse["ts"] == D0 + HOUR + 7 * DAY
    # activity after the window counts for nothing more
    c.activate("bob", D0 + 9 * DAY)
    assert c.invite_balance("bob") == 5 and c.invite_balance("alice") == 5


def test_fraud_after_full_activation_revokes_what_counted() -> None:
    c = Cluster()
    c.register("zed", "alice", D0)  # alice's own inviter, for the second level
    c.activate("alice", D0 + HOUR)
    c.register("alice", "bob", D0 + 2 * HOUR)
    c.activate("bob", D0 + 3 * HOUR)
    assert c.invite_balance("zed") == 10 + 2  # zed's own reward for alice, and the second level for bob
    c.invite("fraud_flagged", "alice", "bob", D0 + 5 * DAY)
    revoked = {a["award_id"]: a for a in c.awards().values() if a.get("status") == "revoked"}
    assert len(revoked) == 5  # alice's two halves, bob's two halves, zed's second-level bonus
    for award in revoked.values():
        assert award["revokes"] in c.awards() and award["points"] < 0
    assert c.invite_balance("bob") == 0 and c.invite_balance("alice") == 10  # alice keeps her welcome
    assert c.invite_balance("zed") == 10
    bob_messages = sum(
        a["points"] for a in c.awards().values() if a["user_id"] == "bob" and a["rule"] == "message_text"
    )
    assert bob_messages == 20  # the invitee's own activity points stay
    for user in ("zed", "alice", "bob"):
        assert c.core(user)["points"] == c.balance(user)


def test_fraud_outside_the_window_changes_nothing() -> None:
    c = Cluster()
    c.register("alice", "bob", D0)
    c.activate("bob", D0 + HOUR)
    c.invite("fraud_flagged", "alice", "bob", D0 + 31 * DAY)
    assert not [a for a in c.invite_awards() if a[2] == "revoked"]


def test_tiers_change_at_the_6th_and_11th_credited_registration() -> None:
    c = Cluster()
    for i in range(12):
        c.register("alice", f"n{i:02d}", D0 + i * HOUR)
    promised = sorted(
        (a["period"], a["user_id"], a["points"]) for a in c.awards().values() if a["rule"] == "invite_inviter"
    )
    by_invitee: dict[str, int] = defaultdict(int)
    for a in c.awards().values():
        if a["rule"] == "invite_inviter":
            by_invitee[a["reason"].split("invitee ")[1].split(",")[0]] += a["points"]
    assert [by_invitee[f"n{i:02d}"] for i in range(12)] == [10] * 5 + [15] * 5 + [20] * 2
    assert len(promised) == 24
    halves = {a["award_id"]: a["points"] for a in c.awards().values() if a["rule"] == "invite_inviter"}
    assert (
        halves[part_award_id("n05", "i1", "pending")] == 7
        and halves[part_award_id("n05", "i2", "pending")] == 8
    )


def test_squad_badge_at_the_third_fully_activated_invitee_once() -> None:
    c = Cluster()
    for i in range(4):
        c.register("alice", f"s{i}", D0 + i * HOUR)
        c.activate(f"s{i}", D0 + DAY + i * HOUR)
        assert ("squad" in c.badges("alice")) == (i >= 2)
    assert c.badges("alice").count("squad") == 1


def test_self_invite_second_registration_and_active_user_earn_nothing() -> None:
    c = Cluster()
    c.register("alice", "alice", D0)
    c.login("old", D0)
    c.register("alice", "old", D0 + HOUR)  # already an active user
    c.register("alice", "bob", D0 + HOUR)
    c.register("carol", "bob", D0 + 2 * HOUR)  # a second registration of bob
    c.register("alice", "bob", D0 + 3 * HOUR)  # alice again, another event
    assert c.invite_awards("carol") == [] and c.invite_awards("old") == []
    assert len(c.invite_awards("alice")) == 2  # bob's two pending halves only
    state = c.cache.get(partition_for(b"alice", PARTITIONS), b"alice\x00ir")
    assert state["n"] == 1  # one credited registration: the tiers count only those


def test_login_before_registration_counts_inside_the_window() -> None:
    c = Cluster()
    c.login("bob", D0 + 2 * HOUR)  # arrives first, happened after the registration
    c.register("alice", "bob", D0 + HOUR)
    assert c.invite_balance("bob") == 5 and c.invite_balance("alice") == 5


def test_daily_limit_holds_registrations_for_an_operator() -> None:
    c = Cluster(invites="{daily_limit: 2}")
    for name in ("a", "b", "c", "d"):
        c.register("alice", name, D0 + HOUR)
    c.activate("c", D0 + 2 * HOUR)
    assert c.invite_balance("c") == 0  # held: nothing activates before approval
    c.decide("c", "approve", D0 + 3 * HOUR)
    assert c.invite_balance("c") == 10  # its activity since registering counts from the approval
    assert c.awards()[part_award_id("c", "w1", "activated")]["ts"] == D0 + 3 * HOUR
    c.decide("d", "reject", D0 + 3 * HOUR)
    assert sorted(a[2] for a in c.invite_awards("d")) == ["expired", "expired", "pending", "pending"]
    c.decide("d", "approve", D0 + 4 * HOUR)  # nothing waits any more: ignored
    assert c.invite_balance("d") == 0


def test_budget_holds_registrations_once_the_month_is_spent() -> None:
    c = Cluster(invites="{monthly_budget: 40}")
    for name in ("a", "b", "c"):
        c.register("alice", name, D0 + HOUR)
    # 20 promised each (10 inviter + 10 welcome): the third finds 40 promised and waits
    c.activate("c", D0 + 2 * HOUR)
    c.activate("a", D0 + 2 * HOUR)
    assert c.invite_balance("a") == 10 and c.invite_balance("c") == 0
    c.decide("c", "approve", D0 + 3 * HOUR)
    assert c.invite_balance("c") == 10


def test_channel_multiplier_zero_switches_the_channel_off() -> None:
    c = Cluster(invites="{channels: {spam: 0, poster: 1.5}}")
    c.invite("registered", "alice", "bob", D0, channel="spam")
    c.invite("registered", "alice", "carol", D0, channel="poster")
    c.activate("bob", D0 + HOUR)
    c.activate("carol", D0 + HOUR)
    assert c.invite_balance("bob") == 0 and c.invite_balance("carol") == 15
    assert c.invite_balance("alice") == 15


def scenario(c: Cluster) -> None:
    c.register("zed", "alice", D0)
    c.login("bob", D0 + 2 * HOUR, settle=False)
    c.register("alice", "bob", D0 + HOUR, settle=False)
    c.activate("alice", D0 + HOUR)
    c.register("alice", "carol", D0 + 3 * HOUR, settle=False)
    for i in range(10):
        c.message("bob", D0 + 4 * HOUR + i, group=f"g{i % 3}", settle=False)
    c.invite("fraud_flagged", "alice", "carol", D0 + 5 * HOUR, settle=False)
    c.activate("carol", D0 + 6 * HOUR)
    for i in range(7):  # verdicts come back from 4 partitions in any order: tiers follow ivy's own order
        c.register("ivy", f"k{i}", D0 + i * 60_000, settle=False)
    for i in range(0, 7, 2):
        c.login(f"k{i}", D0 + 2 * DAY, settle=False)
    c.settle()
    c.login("dan", D0 + 9 * DAY)
    c.settle()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_any_delivery_order_of_the_internal_topic_makes_the_same_awards(seed: int) -> None:
    reference = Cluster()
    scenario(reference)
    shuffled = Cluster(seed=seed)
    scenario(shuffled)
    assert shuffled.awards() == reference.awards()
    assert shuffled.awards()[part_award_id("k4", "i2", "pending")]["points"] == 5  # 5th: 10 = 5 + 5
    assert shuffled.awards()[part_award_id("k5", "i2", "pending")]["points"] == 8  # 6th: 15 = 7 + 8
    for user in ("zed", "alice", "bob", "carol"):
        assert shuffled.core(user)["points"] == shuffled.balance(user)


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_balance_never_counts_pending_or_expired(user: str) -> None:
    c = Cluster()
    c.register("alice", "bob", D0)
    assert c.core(user)["points"] == c.balance(user) == 0


def test_a_deadline_the_partition_has_passed_already_fires_when_scheduled() -> None:
    c = Cluster()
    other = next(
        u
        for u in (f"x{i}" for i in range(100))
        if partition_for(u.encode(), PARTITIONS) == partition_for(b"bob", PARTITIONS)
    )
    c.login("bob", D0 + 2 * HOUR, settle=False)
    c.register("alice", "bob", D0 + HOUR, settle=False)
    c.login(other, D0 + 10 * DAY, settle=False)  # bob's partition passes the deadline before the promise
    c.settle()
    statuses = sorted((a[0], a[2]) for a in c.invite_awards())
    assert statuses == sorted(
        [("alice", "pending")] * 2
        + [("bob", "pending")] * 2
        + [("alice", "activated"), ("bob", "activated"), ("alice", "expired"), ("bob", "expired")]
    )
