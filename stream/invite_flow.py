"""Carry what invitation steps did into the state and the batch: balances, levels, funnel, outputs.

Kafka-free, like the pipeline it serves. ``settle`` runs inside the partition's transaction (it books the
awards that count into each user's balance and adds the funnel counts); ``emit`` appends the outputs once
the transaction has committed. Every award an invitation step makes belongs to a user of the partition
the step ran on (the steps travel to their owners first), so balances and ledgers stay on their keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stream.core.state import Transaction
from stream.domains.invitations import COUNTING, Invitation, InviteOut
from stream.domains.invite_steps import InviteSteps
from stream.domains.partition import PartitionState
from stream.engine.processor import Engine, Outcome

if TYPE_CHECKING:
    from stream.pipeline import Batch, Pipeline, Record


@dataclass(slots=True)
class Settled:
    """What steps did, ready to emit: each user's outcome and the steps to send."""

    users: list[Outcome] = field(default_factory=list)
    counting: list[Outcome] = field(default_factory=list)  # the awards that count, for the economy
    messages: list[Invitation] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    budget: list[tuple[str, int, int]] = field(default_factory=list)
    funnel: list[tuple[str, str, str, int]] = field(default_factory=list)
    late: int = 0


class InviteFlow:
    """Settle and emit invitation steps for the pipeline."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.steps = InviteSteps(engine.book, engine.calendar)

    def settle(self, tx: Transaction, part: PartitionState, outs: list[InviteOut]) -> Settled:
        """Book the awards that count into their users' balances and count the funnel (in ``tx``)."""
        settled = Settled()
        for out in outs:
            users = sorted(set(out.points) | set(out.badges))
            for user in users:
                outcome = Outcome(
                    points=list(out.points.get(user, ())), badges=list(out.badges.get(user, ()))
                )
                counting = [award for award in outcome.points if award.status in COUNTING]
                for award in counting:
                    outcome.badges.extend(self.engine.book_award(tx, user.encode(), award))
                settled.users.append(outcome)
                if counting:
                    settled.counting.append(Outcome(points=counting))
            settled.messages.extend(out.messages)
            settled.rejected.extend(out.rejected)
            settled.budget.extend(out.budget)
            settled.funnel.extend(out.funnel)
            settled.late += out.late
        if settled.funnel:
            part.funnel(tx, settled.funnel)
        return settled

    def emit(
        self, pipeline: Pipeline, record: Record, settled: Settled, batch: Batch, partition: int
    ) -> None:
        """Append the outputs of settled steps to the batch (after the transaction committed)."""
        calendar = self.engine.calendar
        for outcome in settled.counting:
            for award in outcome.points:
                pipeline.count_economy(record, calendar.day_of(award.ts), Outcome(points=[award]))
        for outcome in settled.users:
            pipeline.emit(record, outcome, batch, partition)
        batch.invites.extend(settled.funnel)
        batch.invite_rejected.extend(settled.rejected)
        batch.budget.extend(settled.budget)
        batch.invite_late += settled.late
        if settled.messages:
            pipeline.send_all(list(settled.messages), record, batch)
