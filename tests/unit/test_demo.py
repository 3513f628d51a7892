"""``make run``'s choice of a user to explain: the one with the most kinds of ignored events and caps this week."""

from __future__ import annotations

from stream.demo import _interesting
from tests.unit.api_examples import USER


def test_interesting_counts_the_kinds_of_ignored_events_and_caps_of_this_week() -> None:
    # this week: like_pair_limit, self_like, cap:like_given, group_without_members, self_thanks_card;
    # last week's like_pair_limit counts once
    assert _interesting(USER) == 5
    assert _interesting({**USER, "days": {"2026-11-21": USER["days"]["2026-11-21"]}}) == 0
    assert _interesting({"days": {}}) == 0
