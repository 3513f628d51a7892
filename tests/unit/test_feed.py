"""Check the synthetic traffic generator: deterministic, a realistic mix, SPEC-shaped records."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from stream.feed import DEFAULT_TOPICS, generate

START = 1_790_000_000_000
SPAN = 3 * 86_400_000
N = 20_000

REQUIRED = {
    "message": {"event_id", "user_id", "team_id", "kind", "ts"},
    "like": {"event_id", "user_id", "team_id", "target_user_id", "ts"},
    "login": {"event_id", "user_id", "team_id", "ts"},
    "activity": {"event_id", "user_id", "team_id", "type", "ts"},
    "member": {"user_id", "team_id", "joined_at"},
}
ACTIVITY_EXTRA = {
    "group_created": {"group_id", "invited_count"},
    "thanks_card": {"target_user_id", "note"},
    "quality_marked": {"target_user_id"},
    "vote": set(),
    "feed_view": set(),
}


@pytest.fixture(scope="module")
def records() -> list[tuple[str, str, dict[str, Any]]]:
    return list(generate(N, users=1000, seed=11, start_ms=START, span_ms=SPAN))


def test_same_seed_same_records(records: list[tuple[str, str, dict[str, Any]]]) -> None:
    assert list(generate(N, users=1000, seed=11, start_ms=START, span_ms=SPAN)) == records
    other = list(generate(N, users=1000, seed=12, start_ms=START, span_ms=SPAN))
    assert other != records
    assert not {v["event_id"] for s, _, v in other if s != "member"} & {
        v["event_id"] for s, _, v in records if s != "member"
    }


def test_roster_first_one_per_user(records: list[tuple[str, str, dict[str, Any]]]) -> None:
    members = records[:1000]
    assert all(s == "member" for s, _, _ in members)
    assert len({k for _, k, _ in members}) == 1000
    assert all(s != "member" for s, _, _ in records[1000:])
    assert len(records) == N + 1000
    assert (
        list(generate(N, users=1000, seed=11, start_ms=START, span_ms=SPAN, roster=False)) == records[1000:]
    )


def test_every_record_has_required_fields(records: list[tuple[str, str, dict[str, Any]]]) -> None:
    for source, key, value in records:
        assert source in DEFAULT_TOPICS
        missing = REQUIRED[source] - value.keys()
        if source == "activity":
            missing |= ACTIVITY_EXTRA[value["type"]] - value.keys()
        assert not missing, (source, value)
        assert key == value["user_id"]
        for field, val in value.items():
            if field in ("ts", "joined_at", "invited_count"):
                assert type(val) is int
            else:
                assert isinstance(val, str) and val, (field, value)
        if source != "member":
            assert START <= value["ts"] < START + SPAN


def test_ids_unique_and_time_ordered(records: list[tuple[str, str, dict[str, Any]]]) -> None:
    events = [v for s, _, v in records if s != "member"]
    assert len({v["event_id"] for v in events}) == N
    backwards = max(a["ts"] - b["ts"] for a, b in itertools.pairwise(events))
    assert backwards <= 1000  # jitter only


def test_mix_roughly_right(records: list[tuple[str, str, dict[str, Any]]]) -> None:
    events = [(s, v) for s, _, v in records if s != "member"]
    by_source = Counter(s for s, _ in events)
    for source, share in {"message": 0.65, "like": 0.20, "login": 0.07, "activity": 0.08}.items():
        assert by_source[source] / N == pytest.approx(share, abs=0.02), source

    messages = [v for s, v in events if s == "message"]
    kinds = Counter(v["kind"] for v in messages)
    for kind, share in {"text": 0.70, "image": 0.10, "file": 0.05, "voice": 0.10, "video": 0.05}.items():
        assert kinds[kind] / len(messages) == pytest.approx(share, abs=0.02), kind
    replies = sum("reply_to_user_id" in v for v in messages) / len(messages)
    assert replies == pytest.approx(0.30, abs=0.03)
    in_group = sum("group_id" in v for v in messages) / len(messages)
    assert in_group == pytest.approx(0.80, abs=0.03)

    likes = [v for s, v in events if s == "like"]
    self_likes = sum(v["user_id"] == v["target_user_id"] for v in likes) / len(likes)
    assert 0.01 <= self_likes <= 0.04
    pairs = Counter((v["user_id"], v["target_user_id"], v["ts"] // 86_400_000) for v in likes)
    assert max(pairs.values()) > 5  # some pairs repeat past the daily pair limit

    types = Counter(v["type"] for s, v in events if s == "activity")
    assert set(types) == set(ACTIVITY_EXTRA)


def test_users_skewed(records: list[tuple[str, str, dict[str, Any]]]) -> None:
    per_user = Counter(k for s, k, _ in records if s != "member")
    top = sum(c for _, c in per_user.most_common(10)) / N
    assert top > 0.05  # the 1% heaviest users carry far more than 1% of the traffic
    assert len(per_user) > 500


def test_invitation_traffic_comes_on_top_of_the_same_events() -> None:
    plain = list(generate(N, users=1000, seed=11, start_ms=START, span_ms=SPAN))
    mixed = list(generate(N, users=1000, seed=11, start_ms=START, span_ms=SPAN, invites=0.05))
    invitee_events = [r for r in mixed if r[1].startswith("v11-")]
    invites = [r for r in mixed if r[0] == "invite"]
    assert [r for r in mixed if r not in invitee_events and r[0] != "invite"] == plain
    registered = {r[2]["invitee_id"] for r in invites if r[2]["type"] == "registered"}
    assert registered and {r[1] for r in invitee_events} <= registered
    for _source, key, value in invites:
        assert key == value["inviter_id"] and value["channel"] and START <= value["ts"] < START + SPAN
    # an invitee's own events come after its registration
    registered_at = {r[2]["invitee_id"]: r[2]["ts"] for r in invites if r[2]["type"] == "registered"}
    assert all(value["ts"] >= registered_at[key] for _, key, value in invitee_events)
