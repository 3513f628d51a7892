"""Kill the worker at a chosen point of a flush, for fault tests (``STREAM_FAULT_KILL=PHASE:N``).

The phases of a batch's flush, in order: ``sent`` (every record of the batch handed to the producer,
nothing confirmed yet), ``durable`` (outputs, changelog and input offsets confirmed by Kafka: under
``exactly_once`` the transaction committed), ``applied`` (the states written to RocksDB). The worker
sends itself SIGKILL on reaching PHASE during its N-th batch (counted from 1 since it started), so
tests can crash it inside each phase rather than at a random moment.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

PHASES = ("sent", "durable", "applied")


class FaultInjector:
    """Count batches and SIGKILL this process at the configured phase of the configured batch."""

    def __init__(self, spec: str | None) -> None:
        self.phase: str | None = None
        self.batch_number = 0
        self.target = 0
        if spec:
            phase, _, number = spec.partition(":")
            if phase not in PHASES or not number.isdigit() or int(number) < 1:
                raise ValueError(
                    f"STREAM_FAULT_KILL={spec!r}: expected PHASE:N with PHASE one of {', '.join(PHASES)} and N >= 1"
                )
            self.phase, self.target = phase, int(number)

    def next_batch(self) -> None:
        """Note that a new batch's flush begins."""
        self.batch_number += 1

    def reached(self, phase: str) -> None:
        """Kill the process now if this is the configured phase of the configured batch."""
        if phase == self.phase and self.batch_number == self.target:
            log.warning("STREAM_FAULT_KILL: killing the worker in phase %r of batch %d", phase, self.target)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
