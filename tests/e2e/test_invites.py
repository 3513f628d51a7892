"""End to end: invitation rewards (seed 002) with the default rules, on a real broker.

The issue's "Done when", with 4 partitions:

- app A: two workers in one consumer group (static members ``w1``/``w2``, ``exactly_once``, batches of at
  most 100 records); the worker owning the partition of the daily-limit inviter's invitees is SIGKILLed
  while the bulk of the invitations is processed, and restarted;
- app R: one worker, never interrupted, reading the same input topics (its own app id and output
  topics): the reference. A's awards (read ``read_committed``, by award id) must equal R's, ids and
  contents.

Both apps start with the bundled rules plus one published version, effective from day 3 (event time), that
sets ``invites.monthly_budget``: only the budget inviter registers anyone from day 3 on.

Who (each inviter's invitees on one partition, so the order its registrations are credited in, which
decides their tiers, is that partition's order, the same in every run):

- ROOT invites MID, who fully activates (phase 1): ROOT is MID's inviter, for the second level;
- MID invites S1, S2, F1 (fully activated: MID's squad badge; ROOT's second-level bonus for each), F2 and
  E (log in only: half), N (silent: everything expires), X (logged in before its registration reached
  its partition, with a later event time: out of order); later S3 and S4 (fully activated: the squad
  is not paid again, the second level is); F1 and F2 are flagged as fraud after activating;
- BIG registers daily_limit + 2 invitees on one day: the tiers change at the 6th and 11th; T5, T6, T10
  and T11 fully activate (halves of 10, 15, 15 and 20); the last two wait for an operator: T21 is
  approved, T22 rejected (both were active before the decision);
- BUD registers four invitees under the budget (two registrations' worth): U1 and U2 are promised, U3 and
  U4 wait; U3 is approved, U4 stays pending despite its activity; U1 fully activates, U2 is silent.

Phases, each waiting on the query API of both apps (every worker of A) for what it needs:

1. ROOT registers MID, who logs in and speaks; X logs in (its registration comes in phase 2);
2. the registrations and activity above, interleaved with 6,000 filler messages; the kill;
3. the fraud flags, the operators' decisions, S3 and S4;
4. an event of another user on E's partition exactly at E's deadline + grace (nothing expires), then one
   1 ms later (E's pending halves expire); then one event per partition on day 11 (every deadline fires).

Event times lie in the ISO week before last and the next (Asia/Shanghai), within the 35-day retention.
Every expected value follows SPEC.md "Invitation rewards" and the ``invites`` section of
stream/rules/default.yaml.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream.domains.invitations import part_award_id
from stream.engine.awards import award_id
from stream.pipeline import partition_for
from stream.rules.model import default_rules_text
from stream.runtime.routing import SERVED_BY
from tests.e2e.harness import (
    Topics,
    WorkerProcess,
    create_topics,
    make_producer,
    output_env,
    produce,
    read_all,
    run_stream,
)
from tests.e2e.test_social import AllShow, awards_of, get, settled_routing
from tests.e2e.test_social import until as _until

pytestmark = pytest.mark.e2e

PARTITIONS = 4
TZ = ZoneInfo("Asia/Shanghai")
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
TEAM = "team-I"
COUNTING = ("granted", "activated", "revoked")  # SPEC: a balance sums these, each award id once

# --- the rules: the bundled defaults' invites section ------------------------------------------------

INVITES = yaml.safe_load(default_rules_text())["invites"]
TIERS: list[tuple[int, int]] = [(tier["start"], tier["points"]) for tier in INVITES["tiers"]]
WELCOME = INVITES["welcome_points"]
SECOND_LEVEL = INVITES["second_level_points"]
SQUAD_SIZE = INVITES["squad_size"]
SQUAD = INVITES["squad_badge"]
DAILY_LIMIT = INVITES["daily_limit"]
WINDOW = INVITES["activation_days"] * DAY
GRACE = INVITES["grace_minutes"] * MINUTE
FULL_MESSAGES = INVITES["full_messages"]
FULL_GROUPS = INVITES["full_groups"]
assert INVITES["monthly_budget"] is None and INVITES["channels"] == {}
assert INVITES["default_multiplier"] == 1
assert [start for start, _ in TIERS] == [1, 6, 11], "the scenario's boundaries: 5->6 and 10->11"


def tier_points(n: int) -> int:
    """SPEC: the inviter's n-th credited registration pays the last tier started."""
    return [points for start, points in TIERS if start <= n][-1]


def halves(points: int) -> tuple[int, int]:
    """SPEC: the first half rounded down, and the rest."""
    return points // 2, points - points // 2


BUDGET = 2 * (tier_points(1) + WELCOME)  # two registrations' promises: the third waits
BUDGET_VERSION = "invites-budget.2"

# --- calendar: the ISO week before last ----------------------------------------------------------------


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


def day_name(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, TZ).date().isoformat()


BUDGET_FROM = at(3)  # the budget version's effective_from: only BUD registers from then on
CLOCK_DAY = 11  # one event per partition: past every deadline + grace, still in the past

# --- who -----------------------------------------------------------------------------------------------

_taken: set[str] = set()


def _ids(prefix: str, count: int, partition: int | None = None) -> list[str]:
    """Return ``count`` new ids starting with ``prefix``: all on ``partition``, or on 0, 1, 2, ... in turn."""
    out = []
    for i in range(count):
        wanted = partition if partition is not None else i % PARTITIONS
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


P_M, P_T, P_U = 0, 1, 2  # the partitions of MID's, BIG's and BUD's invitees
(ROOT,) = _ids("root", 1, 3)
(MID,) = _ids("mid", 1, 2)
(BIG,) = _ids("big", 1, 3)
(BUD,) = _ids("bud", 1, 0)
S1, S2, F1, F2, E, N, X, S3, S4 = _ids("m-inv", 9, P_M)
T = _ids("t-inv", DAILY_LIMIT + 2, P_T)  # T[0] is the 1st credited registration
U1, U2, U3, U4 = _ids("u-inv", 4, P_U)
CLOCKS = _ids("clock", PARTITIONS)  # CLOCKS[p] is on partition p
FILLERS = _ids("filler", 2 * PARTITIONS)
GROUPS = [f"grp-{k}" for k in range(FULL_GROUPS)]

# --- the invitations and what each must earn ------------------------------------------------------------


@dataclass
class Invitation:
    inviter: str
    invitee: str
    n: int  # the inviter's n-th credited registration
    ts: int  # the registration's event time
    fate: str  # full | half | none | fraud_full | fraud_half | held | rejected | approved


FULLY_ACTIVATED = ("full", "fraud_full", "approved")
INVITATIONS: list[Invitation] = []


def invitation(inviter: str, invitee: str, ts: int, fate: str) -> Invitation:
    n = 1 + sum(1 for i in INVITATIONS if i.inviter == inviter)
    INVITATIONS.append(Invitation(inviter, invitee, n, ts, fate))
    return INVITATIONS[-1]


# Phase 1
MID_REG = invitation(ROOT, MID, at(0, 8), "full")
X_LOGIN = at(0, 13)  # after X's registration (day 0 12:06) by event time, produced in phase 1
# Phase 2: MID's seven, in this order on one partition (credited 1st to 7th)
for i, (who, fate) in enumerate(
    [
        (S1, "full"),
        (S2, "full"),
        (F1, "fraud_full"),
        (F2, "fraud_half"),
        (E, "half"),
        (N, "none"),
        (X, "half"),
    ]
):
    invitation(MID, who, at(0, 12, i), fate)
# BIG's daily_limit + 2 on day 1; T[4], T[5], T[9], T[10] (5th, 6th, 10th, 11th) fully activate
BOUNDARIES = [T[4], T[5], T[9], T[10]]
for i, who in enumerate(T):
    fate = "full" if who in BOUNDARIES else "none"
    if i == DAILY_LIMIT:
        fate = "approved"
    elif i == DAILY_LIMIT + 1:
        fate = "rejected"
    invitation(BIG, who, at(1, 8, i), fate)
# BUD's four under the budget, day 3
for i, (who, fate) in enumerate([(U1, "full"), (U2, "none"), (U3, "approved"), (U4, "held")]):
    invitation(BUD, who, at(3, 9, i), fate)
# Phase 3: MID's 8th and 9th (registered on day 1, before the budget version)
invitation(MID, S3, at(1, 12), "full")
invitation(MID, S4, at(1, 12, 1), "full")
BY_INVITEE = {i.invitee: i for i in INVITATIONS}

FRAUD_TS = at(2, 20)
APPROVE_T, REJECT_T = at(2, 10), at(2, 10, 1)  # the decisions on T21 and T22
APPROVE_U = at(3, 18)  # the decision on U3
ACTIVITY_AT = {S1: at(0, 14), S2: at(0, 15), F1: at(0, 16), F2: at(0, 17), E: at(0, 18)}
ACTIVITY_AT |= {who: at(1, 14, 2 * i) for i, who in enumerate(T)}
ACTIVITY_AT |= {U1: at(3, 12), U3: at(3, 13), U4: at(3, 14), S3: at(1, 15), S4: at(1, 16), MID: at(0, 8, 30)}


def inviter_of(user: str) -> str | None:
    found = BY_INVITEE.get(user)
    return found.inviter if found else None


def expected_invite_awards() -> dict[str, tuple[str, str, str, int]]:
    """Every invitation award by id: (user, rule or badge, status or kind, points), from SPEC and the rules."""
    out: dict[str, tuple[str, str, str, int]] = {}
    full_by_inviter: dict[str, int] = defaultdict(int)
    for inv in INVITATIONS:
        first, rest = halves(tier_points(inv.n))
        w_first, w_rest = halves(WELCOME)
        parts = {"i1": first, "i2": rest, "w1": w_first, "w2": w_rest}
        for name, points in parts.items():
            if not points:
                continue
            user, rule = (
                (inv.inviter, "invite_inviter") if name[0] == "i" else (inv.invitee, "invite_welcome")
            )
            first_half = name[1] == "1"
            statuses = ["pending"]
            if inv.fate in ("full", "approved"):
                statuses.append("activated")
            elif inv.fate == "fraud_full" or (inv.fate == "fraud_half" and first_half):
                statuses += ["activated", "revoked"]
            elif inv.fate == "half" and first_half:
                statuses.append("activated")
            elif inv.fate != "held":
                statuses.append("expired")  # silent, rejected, or flagged before it counted
            for status in statuses:
                signed = -points if status == "revoked" else points
                out[part_award_id(inv.invitee, name, status)] = (user, rule, status, signed)
        if inv.fate in FULLY_ACTIVATED:
            full_by_inviter[inv.inviter] += 1
            second = inviter_of(inv.inviter)
            if second is not None:
                rule = "invite_second_level"
                out[award_id(rule, inv.invitee, "granted")] = (second, rule, "granted", SECOND_LEVEL)
                if inv.fate == "fraud_full":
                    revoked = award_id(rule, inv.invitee, "revoked")
                    out[revoked] = (second, rule, "revoked", -SECOND_LEVEL)
    for inviter, n in full_by_inviter.items():
        if n >= SQUAD_SIZE:
            out[award_id("badge", inviter, SQUAD, "lifetime")] = (inviter, SQUAD, "achievement", 0)
    return out


# --- input -----------------------------------------------------------------------------------------------

Record = tuple[str, str | None, Any]
_event_ids = itertools.count()
LAST_TS: dict[str, int] = {}  # user -> the latest event time produced on the user's key (its watermark)


def _eid(prefix: str) -> str:
    return f"{prefix}{next(_event_ids)}"


def _seen(user: str, ts: int) -> None:
    LAST_TS[user] = max(LAST_TS.get(user, 0), ts)


def login(user: str, ts: int) -> Record:
    _seen(user, ts)
    return ("login", user, {"event_id": _eid("l"), "user_id": user, "team_id": TEAM, "ts": ts})


def msg(user: str, ts: int, group: str | None = None) -> Record:
    _seen(user, ts)
    doc: dict[str, Any] = {"event_id": _eid("m"), "user_id": user, "team_id": TEAM, "kind": "text", "ts": ts}
    return ("message", user, doc | ({"group_id": group} if group else {}))


def invite(kind: str, inviter: str, invitee: str, ts: int) -> Record:
    _seen(inviter, ts)
    doc = {"event_id": _eid("i"), "type": kind, "inviter_id": inviter, "invitee_id": invitee}
    return ("invite", inviter, doc | {"channel": "link", "ts": ts})


def register(inv: Invitation) -> Record:
    return invite("registered", inv.inviter, inv.invitee, inv.ts)


def decide(invitee: str, decision: str, ts: int) -> Record:
    doc = {"event_id": _eid("d"), "invitee_id": invitee, "decision": decision, "ts": ts, "operator": "op"}
    return ("decision", invitee, doc)


def active(user: str, ts: int, messages: int = FULL_MESSAGES) -> list[Record]:
    """A login at ``ts``, then ``messages`` messages over the groups in turn (both halves' conditions)."""
    return [login(user, ts)] + [
        msg(user, ts + (k + 1) * MINUTE, GROUPS[k % len(GROUPS)]) for k in range(messages)
    ]


def phase1() -> list[Record]:
    return [register(MID_REG), *active(MID, ACTIVITY_AT[MID]), login(X, X_LOGIN)]


def phase2() -> list[Record]:
    """MID's seven, BIG's daily_limit + 2 and BUD's four registrations, and their invitees' activity.

    Each inviter's registrations, and each partition's activity, in the order of the invitations.
    """
    records = [register(i) for i in INVITATIONS if i.inviter in (MID, BIG, BUD) and i.invitee not in (S3, S4)]
    for who in (S1, S2, F1):
        records += active(who, ACTIVITY_AT[who])
    records += [login(F2, ACTIVITY_AT[F2]), login(E, ACTIVITY_AT[E])]
    for who in [*BOUNDARIES, T[DAILY_LIMIT], T[DAILY_LIMIT + 1]]:
        records += active(who, ACTIVITY_AT[who])
    for who in (U1, U3, U4):
        records += active(who, ACTIVITY_AT[who])
    return records


def fillers(per_user: int = 750) -> list[Record]:
    """Messages without a group, on day 2 from two users of every partition (load for the kill)."""
    return [msg(user, at(2) + k * 10_000) for k in range(per_user) for user in FILLERS]


def phase3() -> list[Record]:
    records = [
        invite("fraud_flagged", MID, F1, FRAUD_TS),
        invite("fraud_flagged", MID, F2, FRAUD_TS),
        decide(T[DAILY_LIMIT], "approve", APPROVE_T),
        decide(T[DAILY_LIMIT + 1], "reject", REJECT_T),
        decide(U3, "approve", APPROVE_U),
        register(BY_INVITEE[S3]),
        register(BY_INVITEE[S4]),
    ]
    for who in (S3, S4):
        records += active(who, ACTIVITY_AT[who])
    return records


# --- the apps and their query API --------------------------------------------------------------------------

T_ = TypeVar("T_")


def until(
    what: str, probe: Callable[[], T_ | None], workers: list[WorkerProcess], timeout: float = 180
) -> T_:
    """Poll ``probe`` like test_social's ``until``, but fail at once when a worker has exited by itself."""

    def alive_probe() -> T_ | None:
        for worker in workers:
            assert worker.proc is not None
            if worker.proc.poll() is not None:
                raise AssertionError(
                    f"waiting for {what}: the worker on :{worker.port} exited with {worker.proc.returncode}; "
                    f"its first traceback:\n{first_traceback(worker)}"
                )
        value = probe()
        alive_probe.seen = getattr(probe, "seen", value)  # type: ignore[attr-defined]
        return value

    return _until(what, alive_probe, workers, timeout)


def first_traceback(worker: WorkerProcess) -> str:
    """Return the first traceback in a worker's log, to its exception line."""
    lines = worker.log_tail(2000).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), None)
    if start is None:
        return worker.log_tail(15)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines) - 1)
    return "\n".join(lines[start : end + 1])


def ledger_ids(worker: WorkerProcess, user: str) -> set[str] | None:
    status, _, body = get(worker, f"/users/{user}/ledger?limit=40")
    return {entry["award_id"] for entry in body["awards"]} if status == 200 else None


def all_ledgers_hold(workers: list[WorkerProcess], wanted: dict[str, set[str]]) -> Callable[[], bool]:
    """A probe: every worker lists ``wanted[user]`` among each user's latest awards."""

    def probe() -> bool:
        for worker in workers:
            for user, ids in wanted.items():
                have = ledger_ids(worker, user)
                if have is None or not ids <= have:
                    probe.seen = (worker.port, user, sorted(ids - (have or set())))  # type: ignore[attr-defined]
                    return False
        return True

    return probe


def watermarks_reached(workers: list[WorkerProcess], users: list[str]) -> Callable[[], bool]:
    """A probe: on every worker, each user's watermark is the latest event time produced for it."""

    def probe() -> bool:
        for worker in workers:
            for user in users:
                status, _, body = get(worker, f"/users/{user}")
                if status != 200 or body["watermark_ts"] != LAST_TS[user]:
                    probe.seen = (worker.port, user, status, body and body.get("watermark_ts"))  # type: ignore[attr-defined]
                    return False
        return True

    return probe


def ids_of(user: str, part_names: str, status: str) -> set[str]:
    return {part_award_id(user, name, status) for name in part_names.split()}


def create_invite_topics(bootstrap: str, topics: Topics) -> None:
    """Create the invitation input topics, unless ``create_topics`` made them already."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    names = [topics.source(kind) for kind in ("invite", "decision")]
    wanted = [NewTopic(name, PARTITIONS, 1) for name in names if name not in existing]
    for future in admin.create_topics(wanted).values() if wanted else ():
        future.result()


def budget_rules_text() -> str:
    """The bundled defaults as a new version from BUDGET_FROM on, with a monthly invitation budget."""
    text = default_rules_text()
    from_local = datetime.fromtimestamp(BUDGET_FROM / 1000, TZ).replace(tzinfo=None).isoformat()
    for old, new in [
        ('version: "2026-11-23.1"', f'version: "{BUDGET_VERSION}"'),
        ('effective_from: "2020-01-01T00:00:00"', f'effective_from: "{from_local}"'),
        ("  monthly_budget: null", f"  monthly_budget: {BUDGET}"),
    ]:
        assert text.count(old) == 1, f"the bundled defaults changed: {old!r} not found once"
        text = text.replace(old, new)
    return text


# --- the test ---------------------------------------------------------------------------------------------------


def test_invitation_rewards_with_a_worker_killed(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    began = time.monotonic()
    assert {part(u) for u in (S1, S2, F1, F2, E, N, X, S3, S4)} == {P_M}
    assert {part(u) for u in T} == {P_T} and {part(u) for u in (U1, U2, U3, U4)} == {P_U}
    assert [part(c) for c in CLOCKS] == list(range(PARTITIONS))
    assert (
        max(i.ts for i in INVITATIONS if i.inviter != BUD)
        < BUDGET_FROM
        <= min(i.ts for i in INVITATIONS if i.inviter == BUD)
    )
    create_topics(bootstrap, topics, PARTITIONS)
    create_invite_topics(bootstrap, topics)
    invite_topics = {
        "STREAM_TOPIC_INVITES": topics.source("invite"),
        "STREAM_TOPIC_INVITE_DECISIONS": topics.source("decision"),
    }
    # The budget version, published before any worker starts (so none has scored an event it covers).
    rules_file = tmp_path / "budget.yaml"
    rules_file.write_text(budget_rules_text())
    cli_env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, **topics.env(), **invite_topics}
    published = run_stream(["rules", "publish", str(rules_file), "--force"], cli_env)
    assert published.returncode == 0, published.stderr
    producer = make_producer(bootstrap)  # murmur2: each key on its user's partition

    app_a = f"{topics.prefix}-a"
    for name in ("w1", "w2", "ref"):
        (tmp_path / name).mkdir()
    killed = [
        WorkerProcess(
            bootstrap,
            topics,
            tmp_path / name,
            app_a,
            PARTITIONS,
            **output_env(topics, "a"),
            **invite_topics,
            STREAM_INSTANCE_ID=name,
            STREAM_BATCH_MAX="100",  # many transactions: the kill lands mid-run
        )
        for name in ("w1", "w2")
    ]
    ref = WorkerProcess(
        bootstrap,
        topics,
        tmp_path / "ref",
        f"{topics.prefix}-b",
        PARTITIONS,
        **output_env(topics, "r"),
        **invite_topics,
    )
    workers = [*killed, ref]
    try:
        for worker in workers:
            worker.spawn()
        for worker in workers:
            worker.wait_ready(180)
            assert worker.metrics().get('stream_processing_guarantee_info{guarantee="exactly_once"}') == 1
            versions = [v["version"] for v in worker.get("/rules")["versions"]]
            assert versions[-1] == BUDGET_VERSION and len(versions) == 2, versions
        owners = until(
            "app A's two workers to share the partitions", lambda: settled_routing(killed), workers
        )
        print(f"ready after {time.monotonic() - began:.1f} s; owners {owners}")

        # 1. MID registers and fully activates; X logs in before its registration is even produced.
        produce(producer, topics, phase1())
        until(
            "ROOT's reward for MID, activated",
            AllShow(workers, f"/users/{ROOT}", lambda b: b["balance"] == tier_points(1)),
            workers,
        )
        until("X's early login", watermarks_reached(workers, [X]), workers)

        # 2. The bulk, interleaved with filler messages, by a thread; the worker of A owning BIG's invitees'
        # partition is SIGKILLed once it has processed 600 records of the phase, and restarted.
        scenario, filler = phase2(), fillers()
        slices = 12
        chunks = [
            filler[k * len(filler) // slices : (k + 1) * len(filler) // slices]
            + scenario[k * len(scenario) // slices : (k + 1) * len(scenario) // slices]
            for k in range(slices)
        ]
        victim_url = owners[str(P_T)]
        victim = next(w for w in killed if victim_url.endswith(f":{w.port}"))
        before = victim.processed()
        sent = [0]

        def produce_bulk() -> None:
            for chunk in chunks:
                sent[0] += produce(producer, topics, chunk)

        producing = threading.Thread(target=produce_bulk)
        producing.start()
        deadline = time.monotonic() + 120
        while (progress := victim.processed() - before) < 600:
            assert time.monotonic() < deadline, f"the victim processed {progress}:\n{victim.log_tail()}"
            time.sleep(0.01)
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        print(f"SIGKILLed the worker on :{victim.port} after {progress:.0f} records; {sent[0]} produced")
        share = sum(1 for _, key, _ in scenario + filler if key and owners[str(part(key))] == victim_url)
        assert progress < share / 2, (progress, share)  # mid-run: most of its share was still to come
        producing.join()
        victim.spawn().wait_ready(180)

        everyone = sorted(LAST_TS)
        until("every user's events of phase 2", watermarks_reached(workers, everyone), workers, timeout=240)
        w12, w1_ = "w1 w2", "w1"
        wanted: dict[str, set[str]] = {
            who: ids_of(who, w12, "activated") for who in (S1, S2, F1, U1, *BOUNDARIES)
        }
        wanted |= {who: ids_of(who, w1_, "activated") for who in (F2, E, X)}
        wanted |= {who: ids_of(who, w12, "pending") for who in (N, U2, U3, U4, *T)}
        until("phase 2's invitations on both apps", all_ledgers_hold(workers, wanted), workers)

        # 3. Fraud flags, the operators' decisions, MID's 8th and 9th registrations.
        produce(producer, topics, phase3())
        wanted = {
            F1: ids_of(F1, w12, "revoked"),
            F2: ids_of(F2, w1_, "revoked") | ids_of(F2, "w2", "expired"),
            T[DAILY_LIMIT]: ids_of(T[DAILY_LIMIT], w12, "activated"),
            T[DAILY_LIMIT + 1]: ids_of(T[DAILY_LIMIT + 1], w12, "expired"),
            U3: ids_of(U3, w12, "activated"),
            S3: ids_of(S3, w12, "activated"),
            S4: ids_of(S4, w12, "activated"),
            ROOT: {award_id("invite_second_level", F1, "revoked")}
            | {award_id("invite_second_level", who, "granted") for who in (S1, S2, F1, S3, S4)},
        }
        until("phase 3 on both apps", all_ledgers_hold(workers, wanted), workers)
        until("every user's events of phase 3", watermarks_reached(workers, sorted(LAST_TS)), workers)

        # 4. Event time on E's partition reaches E's deadline + grace: nothing yet; 1 ms later: expired.
        e_due = BY_INVITEE[E].ts + WINDOW + GRACE
        produce(producer, topics, [login(CLOCKS[P_M], e_due)])
        until("the edge event", watermarks_reached(workers, [CLOCKS[P_M]]), workers)
        time.sleep(1)
        e_expired = ids_of(E, "w2", "expired")
        for worker in workers:
            assert not e_expired & (ledger_ids(worker, E) or set()), worker.port
        produce(producer, topics, [login(CLOCKS[P_M], e_due + 1)])
        until("E's rest expired", all_ledgers_hold(workers, {E: e_expired}), workers)
        # Every other deadline: one event per partition on day 11 (other users: the invitees stay silent).
        produce(producer, topics, [login(clock, at(CLOCK_DAY, 12)) for clock in CLOCKS])
        for board in ("best_collaborating_group", "most_valuable_contributor", "most_active_newcomer"):
            until(
                f"board {board} of {WEEK} closed",
                AllShow(workers, f"/boards/{board}/{WEEK}", lambda b: b["closed"]),
                workers,
            )

        expected = expected_invite_awards()

        def both_settled() -> tuple[dict[str, Any], dict[str, Any], int, int] | None:
            a, a_repeated = awards_of(bootstrap, topics, "a")
            r, r_repeated = awards_of(bootstrap, topics, "r")
            if a != r or not expected.keys() <= a.keys():
                both_settled.seen = (len(a), len(r), len(expected.keys() - a.keys()))  # type: ignore[attr-defined]
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
            absent = [expected[k] for k in expected.keys() - r.keys()]
            raise AssertionError(
                f"{len(missing)} missing {[r[k] for k in list(missing)[:3]]}, "
                f"{len(extra)} extra {[a[k] for k in list(extra)[:3]]}, {len(differ)} differ {differ[:3]}; "
                f"expected but not in R: {absent[:5]}"
            ) from None
        print(f"{len(awards)} awards; repeated ids under read_committed: A {repeated}, R {ref_repeated}")
        assert awards == reference
        assert repeated == 0 and ref_repeated == 0, "exactly_once: each award id once for read_committed"
        for tag in ("a", "r"):
            assert (
                read_all(bootstrap, f"{topics.prefix}.{tag}.deadletter", timeout=5, committed_only=True) == []
            )

        check_invite_awards(awards, expected)
        owners = until("app A's routing after the restart", lambda: settled_routing(killed), workers)
        check_balances(workers, ref, awards, owners)
    finally:
        for worker in workers:
            worker.stop()
    print(f"total {time.monotonic() - began:.1f} s")


def check_invite_awards(
    awards: dict[str, dict[str, Any]], expected: dict[str, tuple[str, str, str, int]]
) -> None:
    """The invitation awards are exactly the expected ones; links, periods and times follow SPEC."""
    got = {
        ident: (a["user_id"], a.get("rule") or a["badge"], a.get("status") or a["kind"], a.get("points", 0))
        for ident, a in awards.items()
        if a.get("rule", "").startswith("invite_") or a.get("badge") == SQUAD
    }
    assert got.keys() == expected.keys(), (
        f"missing {[expected[k] for k in expected.keys() - got.keys()][:5]}, "
        f"unexpected {[got[k] for k in got.keys() - expected.keys()][:5]}"
    )
    differ = {k: (got[k], expected[k]) for k in got if got[k] != expected[k]}
    assert not differ, list(differ.values())[:5]

    # the tiers in halves, at the boundaries (10 -> 5 + 5, 15 -> 7 + 8, 20 -> 10 + 10)
    for who in BOUNDARIES:
        n = BY_INVITEE[who].n
        first, rest = (awards[part_award_id(who, p, "activated")]["points"] for p in ("i1", "i2"))
        assert (first, rest) == halves(tier_points(n)) and first + rest == tier_points(n), (who, n)
    assert [BY_INVITEE[w].n for w in BOUNDARIES] == [5, 6, 10, 11]

    # links: an activation names its pending award, an expiry too, a revocation the activation;
    # every award of an invitation names the registration's day
    for inv in INVITATIONS:
        for name in ("i1", "i2", "w1", "w2"):
            pending = part_award_id(inv.invitee, name, "pending")
            for status in ("pending", "activated", "expired", "revoked"):
                ident = part_award_id(inv.invitee, name, status)
                if ident in awards:
                    assert awards[ident]["period"] == day_name(inv.ts), awards[ident]
            activated = part_award_id(inv.invitee, name, "activated")
            if activated in awards:
                assert awards[activated]["activates"] == pending
                assert awards[activated]["points"] == awards[pending]["points"]
            expired = part_award_id(inv.invitee, name, "expired")
            if expired in awards:
                assert awards[expired]["expires"] == pending
                assert awards[expired]["points"] == awards[pending]["points"]
            revoked = part_award_id(inv.invitee, name, "revoked")
            if revoked in awards:
                assert awards[revoked]["revokes"] == activated
                assert awards[revoked]["points"] == -awards[activated]["points"]
                assert awards[revoked]["ts"] == FRAUD_TS
    second_revoked = awards[award_id("invite_second_level", F1, "revoked")]
    assert second_revoked["revokes"] == award_id("invite_second_level", F1, "granted")

    # times: activations at the activity (or the approval), expiries at the window's end or the decision
    assert awards[part_award_id(X, "w1", "activated")]["ts"] == X_LOGIN  # out of order: the login's time
    assert awards[part_award_id(X, "i1", "activated")]["ts"] == X_LOGIN
    for name in ("i2", "w2"):
        assert awards[part_award_id(E, name, "expired")]["ts"] == BY_INVITEE[E].ts + WINDOW
        assert awards[part_award_id(X, name, "expired")]["ts"] == BY_INVITEE[X].ts + WINDOW
        assert awards[part_award_id(N, name, "expired")]["ts"] == BY_INVITEE[N].ts + WINDOW
    held_t, rejected_t = T[DAILY_LIMIT], T[DAILY_LIMIT + 1]
    for name in ("i1", "i2", "w1", "w2"):
        assert awards[part_award_id(held_t, name, "activated")]["ts"] == APPROVE_T  # the window opens then
        assert awards[part_award_id(rejected_t, name, "expired")]["ts"] == REJECT_T
        assert awards[part_award_id(U3, name, "activated")]["ts"] == APPROVE_U
        assert "daily limit" in awards[part_award_id(held_t, name, "pending")]["reason"]
        assert "budget" in awards[part_award_id(U4, name, "pending")]["reason"]
        assert "budget" not in awards[part_award_id(U2, name, "pending")]["reason"]
    # the squad: once each, to the inviters with 3 fully activated invitees
    squads = sorted(a["user_id"] for a in awards.values() if a.get("badge") == SQUAD)
    assert squads == sorted([MID, BIG])
    # invitation points per user, as SPEC counts them
    invite_balance: dict[str, int] = defaultdict(int)
    for award in awards.values():
        if award.get("rule", "").startswith("invite_") and award["status"] in COUNTING:
            invite_balance[award["user_id"]] += award["points"]
    mid_reward = tier_points(1)
    assert invite_balance[ROOT] == mid_reward + SECOND_LEVEL * 5 - SECOND_LEVEL
    assert invite_balance[F1] == 0 and invite_balance[F2] == 0
    assert invite_balance[U4] == 0 and invite_balance[N] == 0
    assert invite_balance[X] == invite_balance[E] == halves(WELCOME)[0]


def check_balances(
    workers: list[WorkerProcess],
    ref: WorkerProcess,
    awards: dict[str, dict[str, Any]],
    owners: dict[str, str],
) -> None:
    """Every worker of both apps reports, for every user, the balance SPEC computes from rewards.points."""
    of_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for award in awards.values():
        of_user[award["user_id"]].append(award)
    users = sorted(LAST_TS.keys() | {i.invitee for i in INVITATIONS})
    uncounted = 0
    for user in users:
        points = [a for a in of_user[user] if "points" in a]
        balance = sum(a["points"] for a in points if a["status"] in COUNTING)
        waiting = sum(a["points"] for a in points if a["status"] in ("pending", "expired"))
        uncounted += waiting > 0
        for worker in workers:
            status, headers, body = get(worker, f"/users/{user}")
            assert status == 200, (worker.port, user, body)
            assert body["balance"] == balance, (worker.port, user, body["balance"], balance, waiting)
            if worker is not ref:
                assert headers[SERVED_BY] == owners[str(part(user))]
            status, _, body = get(worker, f"/users/{user}/ledger?limit=40")
            assert status == 200, (worker.port, user, body)
            listed = body["awards"]
            assert len(listed) == min(40, len(of_user[user])), (user, len(listed), len(of_user[user]))
            for entry in listed:
                published = awards[entry["award_id"]]
                assert published["user_id"] == user
                for field in ("period", "rules_version", "ts", "rule", "points", "status", "reason", "badge"):
                    if field in entry:
                        assert entry[field] == published[field], (user, field, entry, published)
    assert uncounted >= 20  # pending and expired awards were there to leave out
