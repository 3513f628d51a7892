"""Turn a batch of input records into output records and changed state keys.

Kafka-free: the agent hands in records and a state cache over its store, and gets back what to send and
what to store. It decides per record: dead letter (invalid input), forward (the record sits on a
partition other than its user's, or it is a credit for another user), or apply the rules, in one state
transaction per event (a failing event changes nothing and becomes a ``processing_error`` dead letter).

The agent must make every output durable *before or with* the changed states: then a crash at any
point replays into the same awards with the same ids (see stream/runtime/flush.py).
"""

from __future__ import annotations

import logging
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from stream.core.state import StateCache, Transaction
from stream.domains import board as boards
from stream.domains import group as groups
from stream.domains import team as teams
from stream.domains.invitations import Invitation, InviteOut
from stream.domains.messages import (
    Close,
    Grant,
    GroupCount,
    GroupJoin,
    GroupWon,
    Internal,
    Report,
    RosterChange,
    TeamCount,
    parse_internal,
    partition_owner,
)
from stream.domains.partition import PartitionState
from stream.engine import ledger
from stream.engine.awards import COUNTING_STATUSES, BadgeAward, PointAward
from stream.engine.credits import Credit
from stream.engine.layout import CORE, StateFormatError, new_core, prefix
from stream.engine.processor import APPLIED, DUPLICATE, IGNORED, TOO_LATE, Engine, Outcome
from stream.events import (
    Activity,
    Event,
    InvalidEvent,
    Invite,
    InviteDecision,
    Like,
    Login,
    Message,
    Reason,
    decode,
    encode_deadletter,
)
from stream.invite_flow import InviteFlow

log = logging.getLogger(__name__)

FORWARDED = "forwarded"
INVALID = "deadletter"
ERROR = "error"


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs ~6x (measured)
class Record:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(slots=True, unsafe_hash=True)
class Output:
    """One record to produce; ``source`` is the input record it came from."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (a deleted state key)
    source: Record
    timestamp_ms: int | None = None
    partition: int | None = None  # None: the key's murmur2 partition


@dataclass(slots=True)
class Batch:
    """What a batch produced: outputs to send, state changes to store, input offsets to commit."""

    records: list[Record] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> next offset
    outputs: list[Output] = field(default_factory=list)
    last: dict[int, Record] = field(default_factory=dict)  # partition -> its latest record that changed state
    changes: dict[bytes, tuple[int, bytes | None]] = field(default_factory=dict)  # filled by take_batch
    outcomes: list[tuple[str, str, str | None]] = field(default_factory=list)  # topic, outcome, reason
    awards: list[tuple[Output, str, str, int]] = field(default_factory=list)  # output, rule, kind, points
    deadletters: list[str] = field(default_factory=list)  # reasons
    internal: list[tuple[str, str]] = field(default_factory=list)  # internal message type, status
    board_late: int = 0  # contributions that came after their week's boards closed
    reported: list[tuple[int, str]] = field(default_factory=list)  # (partition, week): closed everywhere
    invites: list[tuple[str, str, str, int]] = field(default_factory=list)  # funnel: day, channel, stage, n
    invite_rejected: list[tuple[str, str]] = field(default_factory=list)  # channel, reason
    budget: list[tuple[str, int, int]] = field(default_factory=list)  # month, promised, budget
    invite_late: int = 0  # invitee activity after its window's end had fired


@dataclass(slots=True, unsafe_hash=True)
class Topics:
    """The topic names the pipeline reads and writes."""

    sources: dict[str, str]  # input topic -> source kind ("message", "like", ...)
    routed: str
    points: str
    badges: str
    deadletter: str


@lru_cache(maxsize=1 << 16)
def _murmur(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes, partitions: int) -> int:
    """Return the partition Kafka's default (murmur2) partitioner gives ``key``."""
    return _murmur(key) % partitions


class Pipeline:
    """Process records one at a time into the current batch; the caller flushes batches.

    State lives in a cache in front of the store (stream/core/state.py): the cache is the truth for this
    worker, since the store only sees a change once its batch is flushed. Call ``forget`` when partitions
    move, after flushing.
    """

    def __init__(
        self,
        engine: Engine,
        topics: Topics,
        partitions: int,
        now_ms: Callable[[], int],
        cache: StateCache,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.partitions = partitions
        self.now_ms = now_ms
        self.cache = cache
        self.batch = Batch()
        self._partitions: dict[int, PartitionState] = {}
        self.invites = InviteFlow(engine)
        self._boards_known = (-1, False)  # (versions seen, whether any has boards)
        # Per batch: team counts (partition, team, month, its start) -> (events, latest record), and the
        # economy (partition, week) -> (points by rule, users active per day, latest record)
        self._team_counts: dict[tuple[int, str, str, int], tuple[int, Record]] = {}
        # (partition, group, week, its start) -> (interactions, latest ts, latest record)
        # and the users whose first interaction of the week they hold
        self._group_counts: dict[
            tuple[int, str, str, int], tuple[int, int, Record, list[tuple[str, int]]]
        ] = {}
        self._economy: dict[tuple[int, str], tuple[dict[str, int], dict[str, int], Record]] = {}
        # (partition, user key) -> (the user's awards of the batch, in order; latest record): the ledger
        self._ledger: dict[tuple[int, bytes], tuple[list[PointAward | BadgeAward], Record]] = {}
        # Cumulative counts to other keys, latest per (owner, what): sent once per batch (they are maxima)
        self._coalesced: dict[tuple[Any, ...], tuple[GroupCount | TeamCount, Record]] = {}

    @property
    def max_future_ms(self) -> int:
        """Return how far ahead of the clock an event may be stamped (the most any rules version allows)."""
        return self.engine.book.max_future_ms

    def process(self, record: Record) -> None:
        """Process one record into the current batch."""
        batch = self.batch
        batch.records.append(record)
        batch.offsets[(record.topic, record.partition)] = record.offset + 1
        now = self.now_ms()
        try:
            self._one(record, now, batch)
        except StateFormatError:
            raise  # not this record's fault: the worker must stop
        except Exception as exc:
            log.exception("processing failed for %s[%d]@%d", record.topic, record.partition, record.offset)
            self._dead(record, Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}", now, batch)

    def run(self, records: Sequence[Record]) -> Batch:
        """Process ``records`` and take them as one batch."""
        for record in records:
            self.process(record)
        return self.take_batch()

    @property
    def pending(self) -> int:
        """Return how many records the current batch holds."""
        return len(self.batch.records)

    def take_batch(self) -> Batch:
        """Close the current batch: encode its changed state keys and start a new one."""
        self._flush_coalesced(self.batch)
        batch, self.batch = self.batch, Batch()
        batch.changes = self.cache.take_changes()
        return batch

    def trim(self) -> None:
        """Evict the least recently used state keys beyond the cache's size (never unflushed ones)."""
        self.cache.trim()

    def forget(self) -> None:
        """Drop every cached state (after a rebalance the store is the truth again)."""
        self.cache.clear()
        self._partitions.clear()  # their remembered clocks too
        for pending in (self._coalesced, self._group_counts, self._team_counts, self._economy, self._ledger):
            pending.clear()

    def partition(self, partition: int) -> PartitionState:
        """Return the functions over one partition's own state."""
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = PartitionState(
                partition, self.partitions, self.engine.calendar
            )
        return state

    def _one(self, record: Record, now: int, batch: Batch) -> None:
        topics = self.topics
        source_partition: int | None = None  # an input record of this partition's own
        if record.topic == topics.routed:
            envelope = orjson.loads(record.value or b"null")
            internal = parse_internal(envelope) if type(envelope) is dict else None
            if internal is not None:
                self._internal(record, internal, batch)
                return
            event, source_record = self._unwrap(envelope, record, now)
            if type(event) is Credit:
                source_partition = event.source
            elif source_record is not record:
                source_partition = source_record.partition
        else:
            source = topics.sources[record.topic]
            try:
                event = decode(source, record.value, record.key, now_ms=now, max_future_ms=self.max_future_ms)
            except InvalidEvent as exc:
                self._dead(record, exc.reason, exc.detail, now, batch)
                return
            source_record = record
        user_key = event.user_id.encode()
        if partition_for(user_key, self.partitions) != record.partition:
            self._forward(record, user_key, source_record, batch)
            return
        part = self.partition(record.partition)
        if type(event) is InviteDecision:
            self._decide(record, part, event, batch)
            return
        tx = self.cache.begin(record.partition)
        try:
            part.tx, part.source = tx, source_partition
            outcome = self.engine.apply(event, tx, user_key, part.late_now)
            closes = self._partition_step(part, tx, event, outcome)
            invited = self._invite_step(part, tx, event, outcome)
        except BaseException:
            tx.rollback()
            part.timers.forget()  # read again: the rolled back writes may have moved them
            raise
        if tx.commit():
            batch.last[record.partition] = record
        if invited is not None:
            self.invites.emit(self, source_record, invited, batch, record.partition)
        if outcome.status == TOO_LATE:
            self._dead(source_record, Reason.TOO_LATE, outcome.reason or "", now, batch, counted_as=record)
            return
        batch.outcomes.append((record.topic, outcome.status, outcome.reason))
        batch.board_late += outcome.board_late
        day = outcome.day
        if day is not None:
            if outcome.points or outcome.new_user_day:
                self._count_economy(record, day, outcome)
            if outcome.groups_counted:
                ts: int = event.ts  # type: ignore[union-attr]
                joined = (
                    {m.group for m in outcome.messages if type(m) is GroupJoin} if outcome.messages else ()
                )
                for group in outcome.groups_counted:
                    key_g = (record.partition, group, day.week, day.week_start_ms)
                    seen = self._group_counts.get(key_g)
                    members = seen[3] if seen else []
                    if group in joined:
                        members.append((event.user_id, ts))  # type: ignore[union-attr]
                    self._group_counts[key_g] = (
                        (seen[0] + 1, max(seen[1], ts), record, members) if seen else (1, ts, record, members)
                    )
            if outcome.team_counted and type(event) is not Credit:
                team: str = event.team_id  # type: ignore[union-attr]
                key = (record.partition, team, day.month, day.month_start_ms)
                pending = self._team_counts.get(key)
                self._team_counts[key] = (outcome.team_counted + (pending[0] if pending else 0), record)
        self._emit(source_record, outcome, batch, record.partition)
        if closes:
            self._send_all(closes, record, batch)

    def _partition_step(
        self, part: PartitionState, tx: Transaction, event: Event | Credit, outcome: Outcome
    ) -> list[Close]:
        """Apply an event's effects on its partition's own state; return the weeks it closes."""
        for board, week, ident, score, ts in outcome.scores:
            part.score(tx, board, week, ident, score, ts)
        day = outcome.day
        if day is None or type(event) is Credit:
            return []
        assert isinstance(event, Message | Like | Login | Activity)
        if event.ts <= part.next_close or not self._with_boards():
            return []  # nothing to close (checked before looking up the grace of the event's rules)
        return part.observe(tx, event.ts, self.engine.book.at(event.ts).grace_ms)

    def _invite_step(
        self, part: PartitionState, tx: Transaction, event: Event | Credit, outcome: Outcome
    ) -> Any:
        """Apply an event's effects on invitations: the inviter's side, the invitee's, the deadlines."""
        outs: list[InviteOut] = []
        if outcome.invite is not None:
            outs.append(outcome.invite)
        kind = type(event)
        if outcome.invitee:
            outs.append(self.invites.steps.on_activity(tx, event.user_id, event.ts))  # type: ignore[union-attr]
        status = outcome.status
        if (
            (kind is Message or kind is Login or kind is Like or kind is Activity or kind is Invite)
            and status != TOO_LATE
            and status != DUPLICATE
        ):  # a dead letter or a redelivery moves nothing
            timers = part.timers
            ts: int = event.ts  # type: ignore[union-attr]
            timers.observe(tx, ts)
            if timers.next_due is None or ts > timers.next_due:
                outs.extend(self.invites.steps.on_timers(tx, timers, ts, part.prefix))
        if not outs:
            return None
        return self.invites.settle(tx, part, outs)

    def _decide(self, record: Record, part: PartitionState, event: InviteDecision, batch: Batch) -> None:
        """Apply an operator's decision on an invitation waiting for approval."""
        tx = self.cache.begin(record.partition)
        try:
            out = self.invites.steps.on_decision(
                tx,
                event.invitee_id,
                event.decision == "approve",
                event.ts,
                event.event_id,
                part.timers,
                part.prefix,
            )
            if out is not None:  # an approval schedules a deadline the partition may have passed
                outs = [
                    out,
                    *self.invites.steps.on_timers(tx, part.timers, part.timers.watermark(tx), part.prefix),
                ]
            settled = self.invites.settle(tx, part, outs) if out is not None else None
        except BaseException:
            tx.rollback()
            part.timers.forget()
            raise
        if tx.commit():
            batch.last[record.partition] = record
        if settled is None:
            batch.outcomes.append((record.topic, IGNORED, "invite_not_waiting"))
            return
        batch.outcomes.append((record.topic, APPLIED, None))
        self.invites.emit(self, record, settled, batch, record.partition)

    def _with_boards(self) -> bool:
        """Tell whether any rules version has boards (else no week ever needs closing)."""
        versions = self.engine.book.versions
        if self._boards_known[0] != len(versions):
            self._boards_known = (len(versions), any(version.boards for version in versions))
        return self._boards_known[1]

    # --- the internal topic's typed messages ------------------------------------------------------

    def _internal(self, record: Record, message: Internal, batch: Batch) -> None:
        """Apply a message to a group, team, board, user or partition key owned here."""
        partition = record.partition
        if type(message) is not Close:
            owner = message.owner()  # type: ignore[union-attr]
            if partition_for(owner, self.partitions) != partition:
                batch.outputs.append(
                    Output(self.topics.routed, owner, record.value, record, record.timestamp_ms)
                )
                batch.internal.append((type(message).__name__, "forwarded"))
                return
        part = self.partition(partition)
        tx = self.cache.begin(partition)
        try:
            sent, status = self._apply_internal(part, tx, record, message, batch)
        except BaseException:
            tx.rollback()
            raise
        if tx.commit():
            batch.last[partition] = record
        batch.internal.append((type(message).__name__, status))
        self._send_all(sent, record, batch)

    def _apply_internal(
        self, part: PartitionState, tx: Transaction, record: Record, message: Internal, batch: Batch
    ) -> tuple[list[Any], str]:
        book, calendar = self.engine.book, self.engine.calendar
        if type(message) is Invitation:
            timers = part.timers
            done = self.invites.steps.on_step(tx, message, timers, part.prefix)
            # a deadline it scheduled may be passed already by the partition's events: fire it now
            fired = self.invites.steps.on_timers(tx, timers, timers.watermark(tx), part.prefix)
            settled = self.invites.settle(tx, part, [done, *fired])
            messages, settled.messages = settled.messages, []
            self.invites.emit(self, record, settled, batch, part.partition)
            return list(messages), APPLIED
        if type(message) is Grant:
            outcome = self.engine.grant(message, tx, message.owner())
            if outcome.points:
                self._count_economy(record, calendar.day_of(message.period_start_ms), outcome)
            self._emit(record, outcome, batch, part.partition)
            return [], outcome.status
        if type(message) is GroupCount:
            rules = book.at(message.week_start_ms)
            late = part.late(tx, message.week, message.source)
            grants, score = groups.on_count(tx, message, rules, late)
            batch.board_late += late
            if score is not None:
                for board in rules.boards:
                    if board.score == "group_interactions":
                        part.score(tx, board.name, message.week, message.group, score[0], score[1])
            return grants, APPLIED
        if type(message) is GroupWon:
            return groups.on_won(tx, message), APPLIED
        if type(message) is TeamCount:
            rules = book.at(message.month_start_ms)
            month_end = calendar.day_of(message.month_start_ms).month_end_ms
            return teams.on_count(tx, message, rules, month_end), APPLIED
        if type(message) is RosterChange:
            teams.on_roster(tx, message)
            return [], APPLIED
        if type(message) is Close:
            names = sorted({board.name for version in book.versions for board in version.boards})
            sent = part.on_close(tx, message, names, book.retention_ms)
            reports = [m for m in sent if type(m) is Report]
            if reports:
                batch.reported.append((part.partition, reports[0].upto))
            return sent, APPLIED
        assert type(message) is Report
        return boards.on_report(tx, message, self.partitions, self.rules_of_week), APPLIED

    def rules_of_week(self, week: str) -> tuple[Any, int]:
        """Return the rules in effect at the start of an ISO week (``2026-W48``), and that start."""
        start = self.engine.calendar.week_start_ms(week)
        return self.engine.book.at(start), start

    def _count_economy(self, record: Record, day: Any, outcome: Outcome) -> None:
        """Add an event's points by rule (and a user's first event of a day) to the batch's economy."""
        key = (record.partition, day.week)
        pending = self._economy.get(key)
        if pending is None:
            pending = self._economy[key] = ({}, {}, record)
        by_rule, active, _ = pending
        for award in outcome.points:
            by_rule[award.rule] = by_rule.get(award.rule, 0) + award.points
        if outcome.new_user_day:
            active[day.name] = active.get(day.name, 0) + 1
        self._economy[key] = (by_rule, active, record)

    def _flush_coalesced(self, batch: Batch) -> None:
        """Store the batch's team counts and economy; send the latest cumulative counts.

        Called before a Close (what a partition sends for a week must precede its Close) and when the
        batch ends; each of these keys is written once per batch instead of once per event.
        """
        teams: dict[tuple[int, str, int], dict[str, int]] = {}
        records: dict[int, Record] = {}
        for (partition, team, month, month_start), (n, record) in self._team_counts.items():
            teams.setdefault((partition, month, month_start), {})[team] = n
            records[partition] = record
        self._team_counts.clear()
        for (partition, month, month_start), added in teams.items():
            tx = self.cache.begin(partition)
            for count in self.partition(partition).team_counts(tx, month, month_start, added):
                self._coalesced[("tc", partition, count.team, month)] = (count, records[partition])
            if tx.commit():
                batch.last.setdefault(partition, records[partition])
        groups: dict[tuple[int, str, int], dict[str, tuple[int, int]]] = {}
        joins: dict[tuple[int, str, str], list[tuple[str, int]]] = {}
        for (partition, group, week, week_start), (n, ts, record, members) in self._group_counts.items():
            groups.setdefault((partition, week, week_start), {})[group] = (n, ts)
            joins[(partition, group, week)] = members
            records[partition] = record
        self._group_counts.clear()
        for (partition, week, week_start), counted in groups.items():
            tx = self.cache.begin(partition)
            for gcount in self.partition(partition).group_counts(tx, week, week_start, counted):
                gcount.joined = tuple(joins[(partition, gcount.group, week)])
                self._coalesced[("gc", partition, gcount.group, week)] = (gcount, records[partition])
            if tx.commit():
                batch.last.setdefault(partition, records[partition])
        for (partition, user_key), (awards, record) in self._ledger.items():
            tx = self.cache.begin(partition)
            p = prefix(user_key)
            ledger.append(tx, p, tx.edit(p + CORE, new_core), awards)
            tx.commit()
            batch.last.setdefault(partition, record)
        self._ledger.clear()
        for partition, part in self._partitions.items():
            latest = batch.last.get(partition)
            if part.timers.unsaved and latest is not None:
                tx = self.cache.begin(partition)
                part.timers.save(tx)
                tx.commit()
        for (partition, week), (by_rule, active, record) in self._economy.items():
            tx = self.cache.begin(partition)
            self.partition(partition).economy(tx, week, by_rule, active)
            if tx.commit():
                batch.last.setdefault(partition, record)
        self._economy.clear()
        if not self._coalesced:
            return
        routed = self.topics.routed
        for message, record in self._coalesced.values():
            value = orjson.dumps(message.to_record())
            batch.outputs.append(Output(routed, message.owner(), value, record, record.timestamp_ms))
        self._coalesced.clear()

    def _send_all(self, messages: list[Any], record: Record, batch: Batch) -> None:
        routed = self.topics.routed
        for message in messages:
            value = orjson.dumps(message.to_record())
            if type(message) is Close:
                self._flush_coalesced(batch)  # what this partition sent for the week goes before its Close
                key = partition_owner(message.to)
                batch.outputs.append(Output(routed, key, value, record, record.timestamp_ms, message.to))
            else:
                batch.outputs.append(Output(routed, message.owner(), value, record, record.timestamp_ms))

    def _unwrap(self, envelope: Any, record: Record, now: int) -> tuple[Event | Credit, Record]:
        if "credit" in envelope:
            return Credit.from_record(envelope["credit"]), record
        key = envelope.get("key")
        tombstone = envelope.get("tombstone", False)
        origin = Record(
            envelope["topic"],
            envelope["partition"],
            envelope["offset"],
            None if key is None else b64decode(key),
            None if tombstone else envelope["raw"].encode(),
            record.timestamp_ms,
        )
        source = self.topics.sources[origin.topic]
        # Validated at its origin already: the future-time check is not repeated against a later clock.
        event = decode(source, origin.value, record.key, now_ms=now + self.max_future_ms, max_future_ms=0)
        return event, origin

    def _forward(self, record: Record, user_key: bytes, origin: Record, result: Batch) -> None:
        """Send a record to its user's partition through the routed topic."""
        if record.topic == self.topics.routed:
            value = record.value or b""  # already an envelope or a credit: pass it on as it is
        else:
            envelope: dict[str, Any] = {
                "topic": origin.topic,
                "partition": origin.partition,
                "offset": origin.offset,
                "key": None if origin.key is None else b64encode(origin.key).decode(),
                "raw": "" if origin.value is None else origin.value.decode(),
            }
            if origin.value is None:
                envelope["tombstone"] = True
            value = orjson.dumps(envelope)
        result.outputs.append(Output(self.topics.routed, user_key, value, record, record.timestamp_ms))
        result.outcomes.append((record.topic, FORWARDED, Reason.MISROUTED.value))

    def _emit(self, record: Record, outcome: Outcome, result: Batch, partition: int) -> None:
        """Append the outputs of an event; ``record`` is the input it came from (before any forwarding)."""
        topics, outputs = self.topics, result.outputs
        for message in outcome.messages:
            if not isinstance(message, RosterChange):
                continue  # a GroupJoin travels with the group count that includes it (see _flush_coalesced)
            message.version = record.offset  # of the members record: the same on a replay, only growing
            value = orjson.dumps(message.to_record())
            outputs.append(Output(topics.routed, message.owner(), value, record, record.timestamp_ms))
        if outcome.points or outcome.badges:
            first = outcome.points[0] if outcome.points else outcome.badges[0]
            key = (partition, first.user_id.encode())
            pending = self._ledger.get(key)
            if pending is None:
                pending = self._ledger[key] = ([], record)
            pending[0].extend(outcome.points)
            pending[0].extend(outcome.badges)
        for award in outcome.points:
            out = Output(topics.points, award.user_id.encode(), orjson.dumps(award.to_record()), record)
            outputs.append(out)
            status = award.status
            if status == "granted":
                result.awards.append((out, award.rule, "points", award.points))
            else:  # an invitation's promise, activation, expiry or take-back
                counts = award.points if status in COUNTING_STATUSES else 0
                result.awards.append((out, award.rule, status, counts))
        for badge in outcome.badges:
            out = Output(topics.badges, badge.user_id.encode(), orjson.dumps(badge.to_record()), record)
            outputs.append(out)
            result.awards.append((out, badge.badge, badge.kind, 0))
        for credit in outcome.credits:
            credit.source = partition
            value = orjson.dumps({"credit": credit.to_record()})
            outputs.append(Output(topics.routed, credit.user_id.encode(), value, record, record.timestamp_ms))

    def rejected(self, output: Output, error: str) -> Output:
        """Return the dead letter that replaces an output Kafka refused for good (``output_rejected``).

        It names the input record the output came from; the dead letter is bounded in size, so it is
        never refused itself.
        """
        source = output.source
        detail = f"output to {output.topic} ({len(output.value or b'')} bytes) rejected: {error}"
        value = encode_deadletter(
            source.topic,
            source.partition,
            source.offset,
            source.key,
            source.value,
            Reason.OUTPUT_REJECTED,
            detail,
            self.now_ms(),
        )
        return Output(self.topics.deadletter, None, value, source)

    def _dead(
        self,
        record: Record,
        reason: Reason,
        detail: str,
        now: int,
        result: Batch,
        counted_as: Record | None = None,
    ) -> None:
        value = encode_deadletter(
            record.topic, record.partition, record.offset, record.key, record.value, reason, detail, now
        )
        result.outputs.append(Output(self.topics.deadletter, None, value, counted_as or record))
        result.outcomes.append(((counted_as or record).topic, INVALID, reason.value))
        result.deadletters.append(reason.value)

    # the names the invitation flow (stream/invite_flow.py) calls
    count_economy = _count_economy
    emit = _emit
    send_all = _send_all


__all__ = ["APPLIED", "Batch", "Output", "Pipeline", "Record", "Topics", "partition_for"]
