"""End to end: group and team challenges and the weekly boards, with the default rules, on a real broker.

The issue's "Done when", with the bundled rules (group_weekly_500: 500 interactions, team_monthly_10000:
10,000 messages, boards closing 1 hour after the week's end) and 4 partitions:

- app A: two workers in one consumer group (static members ``w1``/``w2``, ``exactly_once``, the default;
  batches of at most 500 records); one of them is SIGKILLed while the 10,000 team messages are being
  processed, and restarted;
- app R: one worker, never interrupted, reading the same input topics at the same time (its own app id
  and output topics): the reference. A's awards (points and badges, read ``read_committed``, by award id,
  as a consumer de-duplicates) must equal R's, ids and contents.

"At the moment" of a crossing is fixed by the order of the internal topic, so the input is produced in
phases, each waiting on the query API of *both* apps (every worker of A) for the state it needs:

1. rosters: team T (six members, and a leaver who joins and leaves: a tombstone on im.members) and team
   S (two newcomers, and an old hand who joined 30 days and a minute before the week ends);
2. group G reaches exactly 500 counted interactions (messages and likes with its group_id; self-likes and
   likes over the per-pair daily limit carry its group_id too, and count for nothing); group H stays
   small; the most valuable contributor contest ends in a tie of two users on different partitions, the
   larger id reaching the final score first by event time; newcomers earn points;
3. a late joiner's first interactions in G, once G has reached the threshold;
4. 10,000 messages with team_id T (from the six members and two contractors outside the roster, plus
   redelivered duplicates and a login that count for nothing), in chunks; the worker of A owning team
   T's partition is SIGKILLed midway through them and restarted;
5. a member joins T once both apps show the crossing (``reached``);
6. an event exactly 1 hour past the week's end (closes nothing), then one 1 ms later (closes the week).

Event times lie in the ISO week before last (Asia/Shanghai), within the 35-day retention; the closing
events in the week after. Expected results follow SPEC.md and stream/rules/default.yaml.
"""

from __future__ import annotations

import functools
import itertools
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
import pytest

from stream.domains.messages import board_owner, group_owner, team_owner
from stream.pipeline import partition_for
from stream.runtime.routing import SERVED_BY
from tests.e2e.harness import (
    Topics,
    WorkerProcess,
    create_topics,
    make_producer,
    output_env,
    produce,
    read_all,
)

pytestmark = pytest.mark.e2e

PARTITIONS = 4
TZ = ZoneInfo("Asia/Shanghai")
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
GRACE = HOUR  # time.board_grace_minutes
T = TypeVar("T")

# --- calendar: the ISO week before last ---------------------------------------------------------------


def _monday() -> date:
    today = datetime.now(TZ).date()
    return today - timedelta(days=today.weekday() + 14)


MONDAY = _monday()
ISO = MONDAY.isocalendar()
WEEK = f"{ISO.year}-W{ISO.week:02d}"


def at(day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    """Epoch ms of local (Shanghai) time on MONDAY + day."""
    d = MONDAY + timedelta(days=day)
    return int(datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=TZ).timestamp() * 1000)


WEEK_END = at(7)
TEAM_DAY = 3  # the team's messages are sent on Thursday
MONTH = (MONDAY + timedelta(days=TEAM_DAY)).strftime("%Y-%m")

# --- who ------------------------------------------------------------------------------------------------

_taken: set[str] = set()


def _ids(prefix: str, count: int, first: int = 0) -> list[str]:
    """Return ``count`` new ids starting with ``prefix`` on partitions first, first+1, ... in turn."""
    out = []
    for i in range(count):
        wanted = (first + i) % PARTITIONS
        n = next(
            n
            for n in itertools.count()
            if f"{prefix}{n}" not in _taken and partition_for(f"{prefix}{n}".encode(), PARTITIONS) == wanted
        )
        out.append(f"{prefix}{n}")
        _taken.add(out[-1])
    return out


def part(user: str) -> int:
    return partition_for(user.encode(), PARTITIONS)


G, H = "grp-G", "grp-H"  # groups
TEAM, OTHER_TEAM = "team-T", "team-S"  # T reaches 10,000 messages; everyone else is in S
G_USERS = _ids("g", 8)  # two on each partition
H_USERS = _ids("h", 3)
(LATE,) = _ids("late", 1, first=1)
(CONTRIB_A,) = _ids("mvc-z", 1, first=2)  # the tie's winner: reached 8 first, yet the larger id
(CONTRIB_B,) = _ids("mvc-a", 1, first=3)
FANS = _ids("fan", 6)
NEWCOMER_1, NEWCOMER_2, OLD_HAND = _ids("new", 3)
MEMBERS = _ids("m", 6)  # team T's roster at the crossing
(LEAVER,) = _ids("left", 1)
CONTRACTORS = _ids("x", 2, first=2)  # send messages with team_id T, never on its roster
(JOINER,) = _ids("joiner", 1, first=2)
EDGE, CLOSER = _ids("clock", 2)
EVERYONE = sorted(_taken)
BOARDS = ("best_collaborating_group", "most_active_newcomer", "most_valuable_contributor")

# --- input ------------------------------------------------------------------------------------------------

Record = tuple[str, str | None, Any]
_event_ids = itertools.count()


def msg(user: str, ts: int, group: str | None = None, team: str = OTHER_TEAM, kind: str = "text") -> Record:
    doc: dict[str, Any] = {"event_id": f"e{next(_event_ids)}", "user_id": user, "team_id": team}
    doc |= {"kind": kind, "ts": ts} | ({"group_id": group} if group else {})
    return ("message", user, doc)


def like(user: str, target: str, ts: int, group: str | None = None, team: str = OTHER_TEAM) -> Record:
    doc: dict[str, Any] = {"event_id": f"e{next(_event_ids)}", "user_id": user, "team_id": team}
    doc |= {"target_user_id": target, "ts": ts} | ({"group_id": group} if group else {})
    return ("like", user, doc)


def act(user: str, kind: str, target: str, ts: int) -> Record:
    doc = {"event_id": f"e{next(_event_ids)}", "user_id": user, "team_id": OTHER_TEAM, "type": kind}
    return ("activity", user, doc | {"target_user_id": target, "ts": ts})


def login(user: str, ts: int, team: str = OTHER_TEAM) -> Record:
    return ("login", user, {"event_id": f"e{next(_event_ids)}", "user_id": user, "team_id": team, "ts": ts})


def member(user: str, team: str, joined_at: int) -> Record:
    return ("member", user, {"user_id": user, "team_id": team, "joined_at": joined_at})


def roster_phase() -> list[Record]:
    long_ago = WEEK_END - 200 * DAY
    records = [member(u, TEAM, long_ago) for u in MEMBERS]
    records += [member(LEAVER, TEAM, long_ago), ("member", LEAVER, None)]  # joined, then left
    # The newcomer board counts users who joined within the 30 days before the week ends.
    records += [
        member(NEWCOMER_1, OTHER_TEAM, WEEK_END - 10 * DAY),
        member(NEWCOMER_2, OTHER_TEAM, WEEK_END - 30 * DAY),  # the first day of the 30
        member(OLD_HAND, OTHER_TEAM, WEEK_END - 30 * DAY - MINUTE),  # a minute too early
    ]
    return records


def group_and_board_phase() -> list[Record]:
    records: list[Record] = []
    # Group G: 8 users send 60 messages each, one of them 61 (Monday and Tuesday): 481 interactions.
    for i, user in enumerate(G_USERS):
        records += [msg(user, at(0, 9) + (i * 61 + k) * 5 * MINUTE, G) for k in range(61 if i == 4 else 60)]
    # Likes in G on Tuesday: each user likes the next one twice (16), and G_USERS[2] likes G_USERS[3] four
    # more times, of which three count (5 a day per pair): 19. Three self-likes count for nothing.
    for i, user in enumerate(G_USERS):
        target = G_USERS[(i + 1) % len(G_USERS)]
        records += [like(user, target, at(1, 10, i, k), G) for k in range(6 if i == 2 else 2)]
    records += [like(G_USERS[0], G_USERS[0], at(1, 11, k), G) for k in range(3)]
    # 481 + 19 = 500: the crossing. Group H: 3 users x 10 messages, and G_USERS[0] speaks twice there.
    records += [msg(user, at(1, 12, i, k), H) for i, user in enumerate(H_USERS) for k in range(10)]
    records += [msg(G_USERS[0], at(1, 13, k), H) for k in range(2)]

    # Most valuable contributor: B and A each receive 8 (counted likes + thanks + quality marks).
    # B: six likes from one fan on Monday (five count), a thanks, a quality mark, and a like on Tuesday
    # 15:00, its last; two self-likes count for nothing.
    f = FANS
    contrib_b = [like(f[0], CONTRIB_B, at(0, 10, k)) for k in range(6)]
    contrib_b += [
        act(f[4], "thanks_card", CONTRIB_B, at(0, 11)),
        act(f[5], "quality_marked", CONTRIB_B, at(0, 12)),
    ]
    contrib_b += [like(CONTRIB_B, CONTRIB_B, at(0, 13, k)) for k in range(2)]
    contrib_b += [like(f[1], CONTRIB_B, at(1, 15))]
    # A: three likes, two thanks, two quality marks and a like, all on Tuesday, the last at 12:00: A
    # reached 8 before B by event time, though produced (and processed) after B's.
    contrib_a = [like(fan, CONTRIB_A, at(1, 8, i)) for i, fan in enumerate(f[2:5])]
    contrib_a += [act(fan, "thanks_card", CONTRIB_A, at(1, 9, i)) for i, fan in enumerate(f[0:2])]
    contrib_a += [act(fan, "quality_marked", CONTRIB_A, at(1, 10, i)) for i, fan in enumerate(f[2:4])]
    contrib_a += [like(f[5], CONTRIB_A, at(1, 12))]
    records += contrib_b + contrib_a

    # Most active newcomer (Wednesday): 8 voice messages = 40 + the daily task 5 = 45 points; 8 text
    # messages = 16 + 5 = 21; the old hand earns more (12 voice: 65) but joined too early.
    records += [msg(NEWCOMER_1, at(2, 9, k), kind="voice") for k in range(8)]
    records += [msg(NEWCOMER_2, at(2, 9, k)) for k in range(8)]
    records += [msg(OLD_HAND, at(2, 9, k), kind="voice") for k in range(12)]
    return records


def late_joiner_phase() -> list[Record]:
    """The late joiner's first interactions in G (Friday): a message and a like."""
    return [msg(LATE, at(4, 10), G), like(LATE, G_USERS[0], at(4, 10, 1), G)]


def team_phase() -> list[Record]:
    """10,000 messages with team_id T on Thursday, round robin over the members and the contractors."""
    senders = MEMBERS + CONTRACTORS
    return [msg(senders[i % len(senders)], at(TEAM_DAY, 8) + i * 1000, team=TEAM) for i in range(10_000)]


# --- the apps and their query API --------------------------------------------------------------------------


def get(worker: WorkerProcess, path: str) -> tuple[int, dict[str, str], Any]:
    """Return status, headers and JSON body of GET ``path``; status 0 when the worker does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=10) as response:
            return response.status, dict(response.headers), orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), orjson.loads(exc.read() or b"null")
    except OSError:
        return 0, {}, None


def bodies(workers: list[WorkerProcess], path: str) -> list[Any] | None:
    """Return every worker's 200 body of ``path``, or None while any answers otherwise."""
    out = []
    for worker in workers:
        status, _, body = get(worker, path)
        if status != 200:
            return None
        out.append(body)
    return out


def until(what: str, probe: Callable[[], T | None], workers: list[WorkerProcess], timeout: float = 180) -> T:
    """Poll ``probe`` until it returns something truthy; fail with what it saw last and the logs' tails."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n----\n".join(w.log_tail(10) for w in workers)
            seen = getattr(probe, "seen", value)
            raise AssertionError(f"timed out waiting for {what}; last seen: {seen}\n{tails}")
        time.sleep(0.5)


class AllShow:
    """A probe: every worker answers ``path`` with a body passing ``test`` (``seen``: the last answers)."""

    def __init__(self, workers: list[WorkerProcess], path: str, test: Callable[[Any], bool]) -> None:
        self.workers, self.path, self.test = workers, path, test
        self.seen: list[Any] = []

    def __call__(self) -> bool:
        self.seen = [get(worker, self.path)[::2] for worker in self.workers]
        return all(status == 200 and self.test(body) for status, body in self.seen)


def reached(body: Any) -> bool:
    return all(challenge["reached"] for challenge in body["challenges"])


def settled_routing(workers: list[WorkerProcess]) -> dict[str, str] | None:
    """Return partition -> owner URL once every worker holds partitions and they agree, else None."""
    views = bodies(workers, "/routing")
    if views is None:
        return None
    owners = views[0]["owners"]
    if any(v["owners"] != owners or not v["ready"] or not v["held"] for v in views):
        return None
    if set(owners.values()) != {v["url"] for v in views}:
        return None
    return dict(owners)


def awards_of(bootstrap: str, topics: Topics, tag: str) -> tuple[dict[str, dict[str, Any]], int]:
    """Read a run's points and badges as a read_committed consumer: awards by id, and repeated ids."""
    records = []
    for kind in ("points", "badges"):
        records += read_all(bootstrap, f"{topics.prefix}.{tag}.{kind}", timeout=20, committed_only=True)
    by_id: dict[str, dict[str, Any]] = {}
    repeated = 0
    for record in records:
        seen = by_id.setdefault(record["award_id"], record)
        if seen is not record:
            repeated += 1
            assert seen == record, f"award id {record['award_id']} with two contents: {seen} vs {record}"
    return by_id, repeated


# --- the test -------------------------------------------------------------------------------------------------


def test_groups_teams_and_boards_with_a_worker_killed(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    began = time.monotonic()
    assert {part(u) for u in EVERYONE} == set(range(PARTITIONS))
    assert CONTRIB_A > CONTRIB_B and part(CONTRIB_A) != part(CONTRIB_B)
    create_topics(bootstrap, topics, PARTITIONS)
    producer = make_producer(bootstrap)  # murmur2: each key on its user's partition

    # App A: two workers in one group, static members (a restart takes its partitions back at once).
    app_a = f"{topics.prefix}-a"
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    killed = [
        WorkerProcess(
            bootstrap,
            topics,
            tmp_path / name,
            app_a,
            PARTITIONS,
            **output_env(topics, "a"),
            STREAM_INSTANCE_ID=name,
            STREAM_BATCH_MAX="500",  # batches smaller than R's: the kill lands mid-run, awards the same
        )
        for name in ("w1", "w2")
    ]
    # App R: the uninterrupted reference, one worker.
    (tmp_path / "ref").mkdir()
    ref = WorkerProcess(
        bootstrap, topics, tmp_path / "ref", f"{topics.prefix}-b", PARTITIONS, **output_env(topics, "r")
    )
    workers = [*killed, ref]
    try:
        for worker in workers:
            worker.spawn()
        for worker in workers:
            worker.wait_ready(180)
            # the default guarantee: one Kafka transaction per batch
            assert worker.metrics().get('stream_processing_guarantee_info{guarantee="exactly_once"}') == 1
        owners = until(
            "app A's two workers to share the partitions", lambda: settled_routing(killed), workers
        )
        print(f"ready after {time.monotonic() - began:.1f} s; owners {owners}")

        # 1. Rosters, seen by both apps before anything is counted.
        produce(producer, topics, roster_phase())
        until(
            "team T's roster without the leaver",
            AllShow(workers, f"/teams/{TEAM}/{MONTH}", lambda b: b["roster"] == sorted(MEMBERS)),
            workers,
        )
        until(
            "team S's roster",
            AllShow(
                workers,
                f"/teams/{OTHER_TEAM}/{MONTH}",
                lambda b: b["roster"] == sorted([NEWCOMER_1, NEWCOMER_2, OLD_HAND]),
            ),
            workers,
        )

        # 2. Group G crosses 500; the board contests; everything counted before the late joiner comes.
        produce(producer, topics, group_and_board_phase())
        until(
            "group G at exactly 500 interactions, reached",
            AllShow(workers, f"/groups/{G}/{WEEK}", lambda b: b["interactions"] == 500 and reached(b)),
            workers,
        )
        until(
            "group H at 32 interactions",
            AllShow(workers, f"/groups/{H}/{WEEK}", lambda b: b["interactions"] == 32 and not reached(b)),
            workers,
        )

        def board_score(user: str, board: str, score: int) -> Callable[[], bool]:
            return AllShow(
                workers,
                f"/users/{user}",
                lambda b: b["weeks"].get(WEEK, {}).get("board_scores", {}).get(board) == score,
            )

        for user, board, score in (
            (CONTRIB_A, "most_valuable_contributor", 8),
            (CONTRIB_B, "most_valuable_contributor", 8),
            (NEWCOMER_1, "most_active_newcomer", 45),
            (NEWCOMER_2, "most_active_newcomer", 21),
        ):
            until(f"{user}'s {board} score {score}", board_score(user, board, score), workers)

        # 3. The late joiner interacts in G after the crossing.
        produce(producer, topics, late_joiner_phase())
        until(
            "the late joiner counted in G",
            AllShow(
                workers, f"/groups/{G}/{WEEK}", lambda b: b["interactions"] == 502 and LATE in b["member_ids"]
            ),
            workers,
        )

        # 4. Team T's 10,000 messages, produced in 20 chunks by a thread, while the worker of app A that
        # owns team T's partition processes them: it is SIGKILLed once it has processed 1,000 of them (of
        # the 5,000 on its two partitions: the count cannot have crossed yet), and restarted.
        team_url = owners[str(partition_for(team_owner(TEAM), PARTITIONS))]
        victim = next(w for w in killed if team_url.endswith(f":{w.port}"))
        before = victim.processed()
        messages = team_phase()
        # Count for nothing toward the team: redelivered messages (same event ids), and a login with
        # team_id T (by the leaver, who sends nothing else: a sender's login would make the message at
        # which it reaches a level depend on the order of two topics, which Kafka does not define).
        extras = [*messages[:5], login(LEAVER, at(TEAM_DAY, 7), TEAM)]
        chunks = [messages[i : i + 500] for i in range(0, len(messages), 500)]
        chunks[5] += extras
        sent = [0]

        def produce_team() -> None:
            for chunk in chunks:
                sent[0] += produce(producer, topics, chunk)

        producing = threading.Thread(target=produce_team)
        producing.start()
        deadline = time.monotonic() + 120
        while (progress := victim.processed() - before) < 1_000:
            assert time.monotonic() < deadline, f"the victim processed {progress}:\n{victim.log_tail()}"
            time.sleep(0.02)
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        print(
            f"SIGKILLed the worker on :{victim.port} after {progress:.0f} of its events; {sent[0]} produced"
        )
        assert progress < 4_000  # mid-run: most of its share was still to come
        producing.join()
        victim.spawn().wait_ready(180)
        team_path = f"/teams/{TEAM}/{MONTH}"
        until(
            "team T at 10,000 messages, reached, its roster of 6 paid",
            AllShow(
                workers,
                team_path,
                lambda b: b["messages"] == 10_000 and reached(b) and b["challenges"][0]["paid_members"] == 6,
            ),
            workers,
            timeout=300,
        )

        # 5. A member joins T after the crossing.
        produce(producer, topics, [member(JOINER, TEAM, int(time.time() * 1000))])
        until(
            "the joiner on team T's roster",
            AllShow(workers, team_path, lambda b: JOINER in b["roster"]),
            workers,
        )

        # 6. An event exactly the grace past the week's end closes nothing; one 1 ms later closes it.
        produce(producer, topics, [login(EDGE, WEEK_END + GRACE)])
        until("the edge event", AllShow(workers, f"/users/{EDGE}", lambda b: True), workers)
        time.sleep(2)  # a Close would take one more hop on the internal topic
        for board in BOARDS:
            path = f"/boards/{board}/{WEEK}"
            for body in until(path, functools.partial(bodies, workers, path), workers):
                assert body["closed"] is False, body
        produce(producer, topics, [login(CLOSER, WEEK_END + GRACE + 1)])
        for board in BOARDS:
            until(
                f"board {board} closed",
                AllShow(workers, f"/boards/{board}/{WEEK}", lambda b: b["closed"] and b["winner"]),
                workers,
            )

        # The awards: app A's equal the reference's, ids and contents, once both have settled.
        def both_settled() -> tuple[dict[str, Any], dict[str, Any], int, int] | None:
            a, a_repeated = awards_of(bootstrap, topics, "a")
            r, r_repeated = awards_of(bootstrap, topics, "r")
            titles = sum(1 for award in a.values() if award.get("kind") == "title")
            if a != r or titles < 11:  # 9 group members + 2 others
                return None
            time.sleep(3)  # and nothing more comes
            if awards_of(bootstrap, topics, "a")[0] != a or awards_of(bootstrap, topics, "r")[0] != r:
                return None
            return a, r, a_repeated, r_repeated

        try:
            awards, reference, repeated, ref_repeated = until(
                "the same awards from both apps", both_settled, workers
            )
        except AssertionError:
            a, r = awards_of(bootstrap, topics, "a")[0], awards_of(bootstrap, topics, "r")[0]
            missing, extra = r.keys() - a.keys(), a.keys() - r.keys()
            differ = [(r[k], a[k]) for k in r.keys() & a.keys() if r[k] != a[k]]
            raise AssertionError(
                f"{len(missing)} missing {[r[k] for k in list(missing)[:3]]}, "
                f"{len(extra)} extra {[a[k] for k in list(extra)[:3]]}, {len(differ)} differ {differ[:3]}"
            ) from None
        print(
            f"{len(awards)} awards; repeated ids under read_committed: A {repeated}, reference {ref_repeated}"
        )
        assert awards == reference
        assert repeated == 0 and ref_repeated == 0, "exactly_once: each award id once for read_committed"
        for worker in workers:  # nothing was invalid, late or from the future
            tag = "r" if worker is ref else "a"
            assert (
                read_all(bootstrap, f"{topics.prefix}.{tag}.deadletter", timeout=5, committed_only=True) == []
            )

        check_awards(awards)
        owners = until("app A's routing after the restart", lambda: settled_routing(killed), workers)
        check_views(workers, killed, ref, awards, owners)
    finally:
        for worker in workers:
            worker.stop()
    print(f"total {time.monotonic() - began:.1f} s")


def check_awards(awards: dict[str, dict[str, Any]]) -> None:
    """The challenges and titles went to exactly the right users, once each."""
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for award in awards.values():
        by_rule[award.get("rule") or f"{award['kind']}:{award['badge']}"].append(award)

    group = by_rule["group_weekly_500"]
    assert sorted(a["user_id"] for a in group) == sorted([*G_USERS, LATE])  # once each; not H's users
    assert {(a["points"], a["period"], a["status"]) for a in group} == {(50, WEEK, "granted")}

    team = by_rule["team_monthly_10000"]
    assert sorted(a["user_id"] for a in team) == sorted(MEMBERS)  # not the leaver, the joiner, contractors
    assert {(a["points"], a["period"], a["status"]) for a in team} == {(500, MONTH, "granted")}

    titles: dict[str, list[str]] = defaultdict(list)
    for award in awards.values():
        if award.get("kind") == "title":
            assert (award["period"], award["badge"] in BOARDS) == (WEEK, True), award
            titles[award["badge"]].append(award["user_id"])
    assert {board: sorted(users) for board, users in titles.items()} == {
        "most_valuable_contributor": [CONTRIB_A],
        "most_active_newcomer": [NEWCOMER_1],
        "best_collaborating_group": sorted([*G_USERS, LATE]),
    }


def check_views(
    workers: list[WorkerProcess],
    killed: list[WorkerProcess],
    ref: WorkerProcess,
    awards: dict[str, dict[str, Any]],
    owners: dict[str, str],
) -> None:
    """Every worker answers for every key: the same views from both apps, balances equal to the awards."""
    # Groups, teams and boards: one answer, whichever worker of whichever app is asked.
    expected_rankings = {
        "most_valuable_contributor": [[CONTRIB_A, 8], [CONTRIB_B, 8], [G_USERS[3], 5]],
        "most_active_newcomer": [[NEWCOMER_1, 45], [NEWCOMER_2, 21]],
        "best_collaborating_group": [[G, 502], [H, 32]],
    }
    winners = {"most_valuable_contributor": CONTRIB_A, "most_active_newcomer": NEWCOMER_1}
    winners["best_collaborating_group"] = G
    for path, key in [
        (f"/groups/{G}/{WEEK}", group_owner(G)),
        (f"/groups/{H}/{WEEK}", group_owner(H)),
        (f"/teams/{TEAM}/{MONTH}", team_owner(TEAM)),
        *[(f"/boards/{board}/{WEEK}", board_owner(board)) for board in BOARDS],
    ]:
        answers = [get(worker, path) for worker in workers]
        assert [status for status, _, _ in answers] == [200] * 3, (path, answers)
        assert answers[0][2] == answers[1][2] == answers[2][2], (path, answers)
        owner = owners[str(partition_for(key, PARTITIONS))]
        assert [headers[SERVED_BY] for _, headers, _ in answers[:2]] == [owner, owner]
    for board in BOARDS:
        body = get(ref, f"/boards/{board}/{WEEK}")[2]
        assert (body["closed"], body["winner"]) == (True, winners[board]), body
        ranking = [[entry["id"], entry["score"]] for entry in body["ranking"]]
        assert ranking[: len(expected_rankings[board])] == expected_rankings[board], (board, ranking)
    g_view = get(ref, f"/groups/{G}/{WEEK}")[2]
    assert (g_view["interactions"], g_view["members"]) == (502, 9)
    assert g_view["member_ids"] == sorted([*G_USERS, LATE])
    assert g_view["titles"] == ["best_collaborating_group"] and reached(g_view)
    team = get(ref, f"/teams/{TEAM}/{MONTH}")[2]
    assert (team["messages"], team["roster"]) == (10_000, sorted([*MEMBERS, JOINER]))
    assert team["challenges"][0]["reached"] and team["challenges"][0]["paid_members"] == 6

    # Users of every partition, from each worker: the balance is the sum of the user's awards' points
    # (all granted), and the ledger lists the latest of those awards as published.
    of_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for award in awards.values():
        of_user[award["user_id"]].append(award)
    for user in EVERYONE:
        balance = sum(a.get("points", 0) for a in of_user[user])
        owner = owners[str(part(user))]
        for worker in workers:
            status, headers, body = get(worker, f"/users/{user}")
            assert status == 200, (worker.port, user, body)
            assert body["balance"] == balance, (worker.port, user, body["balance"], balance)
            if worker is not ref:
                assert headers[SERVED_BY] == owner
            status, _, body = get(worker, f"/users/{user}/ledger?limit=40")
            assert status == 200, (worker.port, user, body)
            listed = body["awards"]
            assert len(listed) == min(40, len(of_user[user])), (user, len(listed), len(of_user[user]))
            for entry in listed:
                published = awards[entry["award_id"]]
                assert published["user_id"] == user
                for field in (
                    "period",
                    "rules_version",
                    "ts",
                    "rule",
                    "points",
                    "status",
                    "reason",
                    "badge",
                    "kind",
                ):
                    if field in entry:
                        assert entry[field] == published[field], (user, field, entry, published)
    # Both workers of app A owned users, so each answered for the other's.
    assert {owners[str(part(u))] for u in EVERYONE} == {owners[str(p)] for p in range(PARTITIONS)}
    assert len(set(owners.values())) == 2 and len(killed) == 2
