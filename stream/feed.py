"""Generate synthetic IM traffic and produce it to Kafka.

``generate`` is pure and deterministic for a seed: the same arguments yield the same records, in the same
order, with the same ids. ``produce`` sends records with the Java-compatible partitioner, so every record
lands on the partition a Faust worker (Java-style murmur2 key hashing) expects for its key.
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

__all__ = ["DEFAULT_TOPICS", "SOURCES", "generate", "produce"]

SOURCES = ("message", "like", "login", "activity", "member", "invite")

DEFAULT_TOPICS: Mapping[str, str] = {
    "message": "im.messages",
    "like": "im.likes",
    "login": "im.logins",
    "activity": "im.activities",
    "member": "im.members",
    "invite": "im.invites",
}

Record = tuple[str, str, dict[str, Any]]
OnSent = Callable[[str, dict[str, Any] | None, float], None]

# Cumulative shares of the mix. Event kinds: 65% messages, 20% likes, 7% logins, 8% activities.
_SOURCE_CUTS = (0.65, 0.85, 0.92)
# Message kinds: text 70%, image 10%, file 5%, voice 10%, video 5%.
_KIND_CUTS = (0.70, 0.80, 0.85, 0.95)
_KINDS = ("text", "image", "file", "voice", "video")
# Activity types, cumulative: feed_view 35%, vote 30%, thanks_card 15%, quality_marked 12%, group_created 8%.
_ACTIVITY_CUTS = (0.35, 0.65, 0.80, 0.92)
_ACTIVITIES = ("feed_view", "vote", "thanks_card", "quality_marked", "group_created")
_NOTES = ("thanks for the help", "great job on the release", "you saved my day", "thank you!", "谢谢你的帮助")

_REPLY_SHARE = 0.30
_GROUP_SHARE = 0.80
_SELF_LIKE_SHARE = 0.02
_REPEAT_LIKE_SHARE = 0.15
_FARMER_SHARE = 0.8
_NEWCOMER_SHARE = 0.10
# Zipf-Mandelbrot weights 1 / (rank + offset) ** exponent: a heavy head without one user dominating.
_ZIPF_USERS = (1.0, 5.0)
_ZIPF_GROUPS = (1.1, 2.0)
_RECENT = 256  # recent messages that replies and likes refer to
_DRAW_CHUNK = 8192
_JITTER_MS = 250
_JITTER_SPAN = 2 * _JITTER_MS + 1
_DAY_MS = 86_400_000
_CHANNELS = ("link", "qrcode", "sms", "poster")
_INVITEE_ACTIVE = 0.6  # invitees who go on to send 10 messages in 2 groups (the rest only log in, or not)
_INVITEE_LOGIN = 0.85
_FRAUD_SHARE = 0.05


def _zipf_cum_weights(n: int, shape: tuple[float, float]) -> list[float]:
    """Return the cumulative Zipf-Mandelbrot weights of ranks 1..n for (exponent, offset)."""
    exponent, offset = shape
    return list(itertools.accumulate(1.0 / (rank + offset) ** exponent for rank in range(1, n + 1)))


def generate(
    n: int,
    *,
    users: int = 5000,
    teams: int = 50,
    groups: int = 800,
    seed: int = 7,
    start_ms: int,
    span_ms: int,
    roster: bool = True,
    invites: float = 0.0,
) -> Iterator[Record]:
    """Yield ``n`` activity events as (source, key, value), after one ``member`` roster record per user.

    Sources are ``message``, ``like``, ``login`` and ``activity`` in SPEC's formats, keyed by the acting user.
    Users are Zipf-distributed (a few are heavy), so are groups. ``ts`` grows linearly over
    [start_ms, start_ms + span_ms) with up to 250 ms of jitter, clamped into the range. Event ids are
    ``<seed>-<index>``: unique within a run, distinct across seeds. ``roster=False`` skips the member records.

    ``invites`` (a share, default 0) adds invitation traffic on top of the ``n`` events, from its own random
    stream (the ``n`` events stay the same): an ``invited`` and a ``registered`` event of a new user
    ``v<seed>-<k>``, then that invitee's own first login and messages in two groups spread over the next
    events (some never log in, some stop after the login), and now and then a ``fraud_flagged``.
    """
    if n < 0 or users < 2 or teams < 1 or groups < 1 or span_ms < 1:
        raise ValueError("need n >= 0, users >= 2, teams >= 1, groups >= 1, span_ms >= 1")
    rng = random.Random(seed)
    end_ms = start_ms + span_ms - 1

    user_ids = [f"u{i:06d}" for i in range(users)]
    team_ids = [f"t{i:03d}" for i in range(teams)]
    group_ids = [f"g{i:05d}" for i in range(groups)]
    user_team = [team_ids[rng.randrange(teams)] for _ in range(users)]
    # Activity rank -> user: a random permutation, so heavy users are spread over ids and teams.
    by_rank = list(range(users))
    rng.shuffle(by_rank)
    user_cw = _zipf_cum_weights(users, _ZIPF_USERS)
    group_cw = _zipf_cum_weights(groups, _ZIPF_GROUPS)
    group_by_rank = list(range(groups))
    rng.shuffle(group_by_rank)

    def draw_group() -> int:
        return group_by_rank[bisect.bisect(group_cw, rng.random() * group_cw[-1])]

    # A few fairly active users farm likes: most of their likes go to one buddy, past the daily pair limit.
    farmers = {
        by_rank[r]: (by_rank[r] + 1 + rng.randrange(users - 1)) % users
        for r in rng.sample(range(max(1, users // 50)), max(1, users // 500))
    }
    # Each user speaks in a handful of groups, popular groups more often.
    user_groups = [[draw_group() for _ in range(1 + rng.randrange(6))] for _ in range(users)]

    # Newcomers joined in the 30 days before start_ms, the others up to two years earlier. Drawn whether or
    # not the roster is yielded, so ``roster`` does not change the events.
    joined_at = [
        start_ms - rng.randrange(1, 30 * _DAY_MS)
        if rng.random() < _NEWCOMER_SHARE
        else start_ms - rng.randrange(30 * _DAY_MS, 730 * _DAY_MS)
        for _ in range(users)
    ]
    if roster:
        for u in range(users):
            uid = user_ids[u]
            yield "member", uid, {"user_id": uid, "team_id": user_team[u], "joined_at": joined_at[u]}

    prefix = f"{seed}-"
    step = span_ms / n if n else 0.0
    rand = rng.random
    total_w = user_cw[-1]
    others = users - 1
    # Recent messages as (message_id, author, group or -1), for replies and likes to refer to.
    recent: list[tuple[str, int, int]] = []
    last_like: dict[int, int] = {}
    draws: list[int] = []
    pos = 0
    new_groups = 0

    irng = random.Random(seed + 1)
    follow: list[tuple[int, int, str, str, dict[str, Any]]] = []  # (index, order, source, key, value)
    invitees = itertools.count()

    def invitation(i: int, ts: int) -> Iterator[Record]:
        inviter = user_ids[by_rank[bisect.bisect(user_cw, irng.random() * total_w)]]
        k = next(invitees)
        invitee, channel = f"v{seed}-{k}", _CHANNELS[irng.randrange(len(_CHANNELS))]
        base = {"inviter_id": inviter, "invitee_id": invitee, "channel": channel}
        yield "invite", inviter, {"event_id": f"{prefix}iv{k}", "type": "invited", **base, "ts": ts}
        yield "invite", inviter, {"event_id": f"{prefix}ir{k}", "type": "registered", **base, "ts": ts}
        team = team_ids[irng.randrange(teams)]
        later = [i + 1 + irng.randrange(max(1, n // 20) or 1) for _ in range(12)]
        later.sort()
        if irng.random() < _INVITEE_LOGIN:
            login = {"event_id": f"{prefix}il{k}", "user_id": invitee, "team_id": team}
            follow.append((later[0], k, "login", invitee, login))
            if irng.random() < _INVITEE_ACTIVE:
                for m in range(10):
                    message = {"event_id": f"{prefix}im{k}-{m}", "user_id": invitee, "team_id": team}
                    message |= {"kind": "text", "group_id": group_ids[(k + m % 2) % groups]}
                    follow.append((later[1 + m], k, "message", invitee, message))
        if irng.random() < _FRAUD_SHARE:
            fraud = {"event_id": f"{prefix}if{k}", "type": "fraud_flagged", **base}
            follow.append((later[-1] + 1 + n // 40, k, "invite", inviter, fraud))  # well after its activity
        follow.sort(key=lambda f: (f[0], f[1]))

    for i in range(n):
        if invites:
            while follow and follow[0][0] <= i:
                _, _, fsource, fkey, fvalue = follow.pop(0)
                fts = start_ms + int(i * step)
                yield fsource, fkey, {**fvalue, "ts": min(end_ms, fts)}
            if irng.random() < invites:
                yield from invitation(i, start_ms + int(i * step))
        if pos == len(draws):
            draws = [by_rank[r] for r in _draw_ranks(rng, user_cw, total_w)]
            pos = 0
        u = draws[pos]
        pos += 1
        uid = user_ids[u]
        ts = start_ms + int(i * step) + int(rand() * _JITTER_SPAN) - _JITTER_MS
        ts = start_ms if ts < start_ms else end_ms if ts > end_ms else ts
        eid = prefix + str(i)
        r = rand()
        value: dict[str, Any]
        if r < _SOURCE_CUTS[0]:
            source = "message"
            k = rand()
            kind = (
                _KINDS[0]
                if k < _KIND_CUTS[0]
                else _KINDS[1]
                if k < _KIND_CUTS[1]
                else _KINDS[2]
                if k < _KIND_CUTS[2]
                else _KINDS[3]
                if k < _KIND_CUTS[3]
                else _KINDS[4]
            )
            value = {"event_id": eid, "user_id": uid, "team_id": user_team[u], "kind": kind, "ts": ts}
            g = -1
            if rand() < _GROUP_SHARE:
                mine = user_groups[u]
                g = mine[int(rand() * len(mine))]
                value["group_id"] = group_ids[g]
            if recent and rand() < _REPLY_SHARE:
                _, author, _ = recent[int(rand() * len(recent))]
                if author == u:  # a reply to oneself is rare but real: keep one in ten
                    author = author if rand() < 0.1 else (u + 1 + int(rand() * others)) % users
                value["reply_to_user_id"] = user_ids[author]
            if len(recent) < _RECENT:
                recent.append((eid, u, g))
            else:
                recent[i % _RECENT] = (eid, u, g)
        elif r < _SOURCE_CUTS[1]:
            source = "like"
            value = {"event_id": eid, "user_id": uid, "team_id": user_team[u], "ts": ts}
            s = rand()
            if s < _SELF_LIKE_SHARE:
                target = u
            elif u in farmers and s < _FARMER_SHARE:
                target = farmers[u]
            elif s < _SELF_LIKE_SHARE + _REPEAT_LIKE_SHARE and u in last_like:
                target = last_like[u]
            elif recent:
                mid, target, g = recent[int(rand() * len(recent))]
                if target == u:
                    target = (u + 1 + int(rand() * others)) % users
                else:
                    value["message_id"] = mid
                    if g >= 0:
                        value["group_id"] = group_ids[g]
            else:
                target = (u + 1 + int(rand() * others)) % users
            last_like[u] = target
            value["target_user_id"] = user_ids[target]
        elif r < _SOURCE_CUTS[2]:
            source = "login"
            value = {"event_id": eid, "user_id": uid, "team_id": user_team[u], "ts": ts}
        else:
            source = "activity"
            a = rand()
            kind = (
                _ACTIVITIES[0]
                if a < _ACTIVITY_CUTS[0]
                else _ACTIVITIES[1]
                if a < _ACTIVITY_CUTS[1]
                else _ACTIVITIES[2]
                if a < _ACTIVITY_CUTS[2]
                else _ACTIVITIES[3]
                if a < _ACTIVITY_CUTS[3]
                else _ACTIVITIES[4]
            )
            value = {"event_id": eid, "user_id": uid, "team_id": user_team[u], "type": kind, "ts": ts}
            if kind == "thanks_card" or kind == "quality_marked":
                target = (u + 1 + int(rand() * others)) % users
                if recent and rand() < 0.7:  # mostly someone who spoke recently
                    author = recent[int(rand() * len(recent))][1]
                    target = author if author != u else target
                value["target_user_id"] = user_ids[target]
                if kind == "thanks_card":
                    value["note"] = _NOTES[int(rand() * len(_NOTES))]
            elif kind == "group_created":
                value["group_id"] = f"gn{seed}-{new_groups}"
                value["invited_count"] = int(rand() * 21) if rand() < 0.9 else 0
                new_groups += 1
        yield source, uid, value


def _draw_ranks(rng: random.Random, cum_weights: list[float], total: float) -> list[int]:
    """Draw a chunk of Zipf ranks (0-based)."""
    rand = rng.random
    bis = bisect.bisect
    return [bis(cum_weights, rand() * total) for _ in range(_DRAW_CHUNK)]


def produce(
    client_config: Mapping[str, str],
    topics: Mapping[str, str],
    records: Iterable[tuple[str, str, dict[str, Any] | None]],
    *,
    rate: float | None = None,
    on_sent: OnSent | None = None,
) -> int:
    """Send records to Kafka and return how many were sent; flush before returning.

    ``topics`` maps each source to its topic name (a source missing from it raises ``KeyError``). Values
    are orjson-encoded (``None`` = a tombstone), keys UTF-8. ``rate`` paces to that many events a second
    (None = as fast as possible). ``on_sent(source, value, wall_clock_s)`` runs right after each record is
    queued.
    ``client_config`` is the librdkafka configuration that reaches the brokers (bootstrap servers and
    security, as ``stream.runtime.kafka_config.librdkafka_config`` builds it); the producer's own settings
    go on top. Raises ``RuntimeError`` if any record failed delivery.
    """
    failures: list[KafkaError] = []

    def on_error(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer(
        {
            **client_config,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "batch.num.messages": 10_000,
            "delivery.report.only.error": True,
            "on_delivery": on_error,
        }
    )
    send = producer.produce
    dumps = orjson.dumps
    now = time.time
    clock = time.perf_counter
    interval = 1.0 / rate if rate else 0.0
    start = clock()
    count = 0
    for source, key, value in records:
        if interval:
            due = start + count * interval
            ahead = due - clock()
            if ahead > 0.001:
                time.sleep(ahead)
        topic = topics[source]
        payload = None if value is None else dumps(value)
        while True:
            try:
                send(topic, payload, key.encode())
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if on_sent is not None:
            on_sent(source, value, now())
        if count % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} records still undelivered after 60 s")
    if failures:
        raise RuntimeError(f"{len(failures)} records failed delivery, first: {failures[0]}")
    return count
