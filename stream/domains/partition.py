"""Keep one partition's own state: its event-time clock, the weeks it has closed, its local board tops.

A week's boards close when an event more than the grace past the week's end is seen on any partition;
each partition must then contribute its exact local result. The protocol, over the internal topic
(cumulative watermarks, so every message is idempotent):

1. A partition whose clock (the latest event time it has seen) passes a week's end plus the grace closes
   every week up to it and sends ``Close(week)`` to every partition, itself included.
2. A partition hearing a ``Close`` for a week it has not closed closes it too, and sends its own.
3. What a partition sends for a week before its ``Close`` reaches each receiver first (one producer, one
   partition: Kafka keeps the order). So a receiver that has heard ``Close(week)`` from *every* partition
   has every contribution to that week: it sends its local top of each board to the board's owner
   (``Report``), and forgets it.
4. A contribution to a week arriving from a partition the receiver has already heard close it is late:
   it still counts for points, never for the board (see ``late``).

Pure: no Kafka; the pipeline sends what the functions return.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from stream.core.state import Transaction
from stream.domains.messages import Close, GroupCount, Report, TeamCount, partition_owner
from stream.domains.timers import Timers
from stream.engine.layout import SEPARATOR
from stream.engine.periods import Calendar

RANKING = 10
"""Entries a board keeps: its ranking's length."""

CLOCK = b"clock"


def new_clock() -> dict[str, Any]:
    """Return the clock of a partition that has seen nothing yet."""
    return {"wm": 0, "next": 0, "closed": "", "heard": {}, "reported": ""}


def rank_key(entry: list[Any]) -> tuple[int, int, str]:
    """Order board entries: the higher score, then who reached it first by event time, then the smaller id."""
    return (-entry[1], entry[2], entry[0])


def merge_top(entries: list[list[Any]], entry: list[Any]) -> list[list[Any]] | None:
    """Return ``entries`` with ``entry`` (id, score, last_ts) in place of its id's, or None if nothing changes."""
    ident = entry[0]
    if (
        len(entries) >= RANKING
        and rank_key(entry) > rank_key(entries[-1])
        and all(e[0] != ident for e in entries)
    ):
        return None
    kept = [e for e in entries if e[0] != ident]
    kept.append(entry)
    kept.sort(key=rank_key)
    return kept[:RANKING]


def week_of_start(calendar: Calendar, ordinal: int) -> tuple[int, str]:
    """Return the ordinal of the Monday of the ISO week holding day ``ordinal``, and that week's name."""
    monday = ordinal - date.fromordinal(ordinal).weekday()
    return monday, calendar.day_for_ordinal(monday).week


class PartitionState:
    """The functions over one partition's own keys (prefix ``\\0p\\0<n>\\0``)."""

    def __init__(self, partition: int, partitions: int, calendar: Calendar) -> None:
        self.partition = partition
        self.partitions = partitions
        self.calendar = calendar
        self.prefix = partition_owner(partition) + SEPARATOR
        self.clock_key = self.prefix + CLOCK
        self.boards_prefix = self.prefix + b"b:"
        self.next_close = 0  # a copy of the stored clock's "next", read once (reset when partitions move)
        # the event being applied: its transaction and source (see ``late``), for ``late_now``
        self.tx: Transaction | None = None
        self.source: int | None = None
        self.late_now = self._late_now  # bound once: no callable built per event
        self.timers = Timers(self.prefix)  # event-time deadlines of the invitations of its invitees

    def _late_now(self, week: str) -> bool:
        assert self.tx is not None
        return self.late(self.tx, week, self.source)

    # --- the clock and the close protocol ---------------------------------------------------------

    def late(self, tx: Transaction, week: str, source: int | None) -> bool:
        """Tell whether a contribution to ``week`` comes after that week closed.

        ``source`` None: one of this partition's own input events, late once this partition has closed
        the week. Else the partition that routed it here (this one included): late once that partition's
        ``Close`` of the week has been heard here, since it follows everything sent before it.
        """
        clock = tx.get(self.clock_key)
        if clock is None:
            return False
        if source is None or not 0 <= source < self.partitions:
            return bool(week <= clock["closed"])
        return bool(week <= clock["heard"].get(str(source), ""))

    def observe(self, tx: Transaction, ts: int, grace_ms: int) -> list[Close]:
        """Advance the clock to an event's time; close the weeks it passes by more than the grace."""
        if ts <= self.next_close:
            return []  # nothing new to close (remembered: the clock's "next" never goes back)
        clock = tx.get(self.clock_key)
        if clock is not None and ts <= clock["next"]:
            self.next_close = clock["next"]
            return []  # nothing new to close: the clock is not even written
        clock = tx.edit(self.clock_key, new_clock)
        clock["wm"] = max(clock["wm"], ts)
        latest = self.calendar.day_of(ts - grace_ms - 1)
        monday, _week = week_of_start(self.calendar, latest.ordinal)
        clock["next"] = self.calendar.day_for_ordinal(monday).week_end_ms + grace_ms
        closable = self.calendar.day_for_ordinal(monday - 1).week
        if closable <= clock["closed"]:
            return []
        clock["closed"] = closable
        return self._broadcast(closable)

    def _broadcast(self, week: str) -> list[Close]:
        return [Close(week, self.partition, to) for to in range(self.partitions)]

    def on_close(
        self, tx: Transaction, close: Close, boards: list[str], retention_ms: int
    ) -> list[Close | Report]:
        """Hear a partition close weeks; close them here too; report the weeks every partition has closed."""
        clock = tx.get(self.clock_key)
        source = str(close.source)
        if not 0 <= close.source < self.partitions:
            return []
        if clock is not None and close.week <= clock["heard"].get(source, ""):
            return []  # heard already (a replay)
        clock = tx.edit(self.clock_key, new_clock)
        clock["heard"] = heard = {**clock["heard"], source: close.week}
        out: list[Close | Report] = []
        if close.week > clock["closed"]:
            clock["closed"] = close.week
            out.extend(self._broadcast(close.week))
        if len(heard) == self.partitions:
            upto = min(heard.values())
            if upto > clock["reported"]:
                out.extend(self._report(tx, upto, boards))
                clock["reported"] = upto
                self._prune(tx, upto, retention_ms)
        return out

    def _report(self, tx: Transaction, upto: str, boards: list[str]) -> list[Close | Report]:
        """Send the local tops of every week up to ``upto`` to the boards' owners, and forget them."""
        weeks: dict[str, dict[str, list[list[Any]]]] = {board: {} for board in boards}
        start = len(self.boards_prefix)
        for key, value in list(tx.scan(self.boards_prefix)):
            week = key[start:].decode()
            if week > upto:
                break
            for board, entries in value.items():
                weeks.setdefault(board, {})[week] = entries
            tx.delete(key)
        return [Report(board, upto, self.partition, by_week) for board, by_week in sorted(weeks.items())]

    def _prune(self, tx: Transaction, upto: str, retention_ms: int) -> None:
        """Delete this partition's group counts, team counts and economy older than the retention."""
        oldest = self.calendar.day_of(self.calendar.week_start_ms(upto) - retention_ms)
        for tag, limit in ((b"g:", oldest.week), (b"e:", oldest.week), (b"t:", oldest.month)):
            prefix = self.prefix + tag
            for key, _value in list(tx.scan(prefix)):
                period = key[len(prefix) :].split(SEPARATOR, 1)[0].decode()
                if period >= limit:
                    break
                tx.delete(key)

    # --- contributions ----------------------------------------------------------------------------

    def score(self, tx: Transaction, board: str, week: str, ident: str, score: int, last_ts: int) -> None:
        """Put a contestant's score of a week (not late: see ``late``) into the local top of a board."""
        key = self.boards_prefix + week.encode()
        current = tx.get(key)
        entries = current.get(board, []) if current is not None else []
        merged = merge_top(entries, [ident, score, last_ts])
        if merged is not None:
            tx.edit(key)[board] = merged

    def group_counts(
        self, tx: Transaction, week: str, week_start_ms: int, added: dict[str, tuple[int, int]]
    ) -> list[GroupCount]:
        """Add a batch's interactions (group -> (count, latest ts)) to this partition's counts of a week.

        One key per week holds every group's cumulative count (one write per batch); returns them.
        """
        record = tx.edit(self.prefix + b"g:" + week.encode())
        out = []
        for group, (n, last_ts) in added.items():
            before = record.get(group)
            total = (before[0] if before else 0) + n
            latest = max(before[1], last_ts) if before else last_ts
            record[group] = (total, latest)
            out.append(GroupCount(group, week, self.partition, total, latest, week_start_ms))
        return out

    def team_counts(
        self, tx: Transaction, month: str, month_start_ms: int, added: dict[str, int]
    ) -> list[TeamCount]:
        """Add a batch's events (team -> count) to this partition's counts of a month (one key per month)."""
        record = tx.edit(self.prefix + b"t:" + month.encode())
        out = []
        for team, n in added.items():
            total = record.get(team, 0) + n
            record[team] = total
            out.append(TeamCount(team, month, self.partition, total, month_start_ms))
        return out

    def funnel(self, tx: Transaction, counts: list[tuple[str, str, str, int]]) -> None:
        """Add invitation funnel counts (registration day, channel, stage, n) to this partition's days."""
        for day, channel, stage, n in counts:
            record = tx.edit(self.prefix + b"f:" + day.encode())
            stages = dict(record.get(channel, {}))
            stages[stage] = stages.get(stage, 0) + n
            record[channel] = stages

    def economy(self, tx: Transaction, week: str, points: dict[str, int], active: dict[str, int]) -> None:
        """Add points by rule and users active for the first time on a day to a week's economy record."""
        record = tx.edit(self.prefix + b"e:" + week.encode())
        if points:
            by_rule = dict(record.get("r", {}))
            for rule, n in points.items():
                by_rule[rule] = by_rule.get(rule, 0) + n
            record["r"] = by_rule
        if active:
            days = dict(record.get("d", {}))
            for day, n in active.items():
                days[day] = days.get(day, 0) + n
            record["d"] = days
