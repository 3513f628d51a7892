"""The early activity log: what an invitation's halves activate on, whatever order events arrive in."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.state import MemoryStore, StateCache
from stream.domains import early
from stream.engine.layout import decode_value, encode_value, new_core
from stream.events import Like, Login, Message

P = b"u\x00"


def replay(events: list[Any]) -> tuple[StateCache, dict[str, Any]]:
    cache = StateCache(MemoryStore(), decode_value, encode_value)
    core = new_core()
    for i, event in enumerate(events):
        tx = cache.begin(0)
        if early.needs_update(core.get("e"), event, event.ts, 2):
            early.update(tx, P, core, event, event.ts, i == 0, 10, 2)
        tx.commit()
    return cache, core


events = st.lists(
    st.one_of(
        st.builds(Login, st.just("e"), st.just("u"), st.just("t"), st.integers(0, 10_000)),
        st.builds(
            Message,
            st.just("e"),
            st.just("u"),
            st.just("t"),
            st.just("text"),
            st.integers(0, 10_000),
            st.sampled_from([None, "g1", "g2", "g3"]),
        ),
        st.builds(Like, st.just("e"), st.just("u"), st.just("t"), st.just("v"), st.integers(0, 10_000)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(events=events, since=st.integers(0, 10_000))
def test_the_log_answers_as_the_whole_history_would(events: list[Any], since: int) -> None:
    cache, core = replay(events)
    tx = cache.begin(0)
    assert early.first_activity(core) == min(e.ts for e in events)
    logins = [e.ts for e in events if type(e) is Login]
    # the first login at or after `since`, when it is the user's first login at all
    expected_login = min(logins) if logins and min(logins) >= since else None
    assert early.first_login(core, since) == expected_login
    messages = sorted(e.ts for e in events if type(e) is Message)
    firsts: dict[str, int] = {}
    for e in events:
        if type(e) is Message and e.group_id is not None:
            firsts[e.group_id] = min(firsts.get(e.group_id, e.ts), e.ts)
    if all(t >= since for t in messages):  # what a credited registration guarantees: no activity before it
        enough = len(messages) >= 10 and len(firsts) >= 2
        reached = early.messages_reached(tx, P, core, since, 10, 2)
        if enough:
            assert reached == max(messages[9], sorted(firsts.values())[1], since)
        else:
            assert reached is None


def test_any_arrival_order_gives_the_same_log() -> None:
    history = [Message("e", "u", "t", "text", 100 + i, f"g{i % 2}") for i in range(12)]
    history.append(Login("e", "u", "t", 50))
    _, forward = replay(history)
    _, backward = replay(list(reversed(history)))
    assert forward["e"][1:] == backward["e"][1:]
