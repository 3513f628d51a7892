"""Fault injection: STREAM_FAULT_KILL=PHASE:N kills at that phase of that batch, and nowhere else."""

from __future__ import annotations

import signal

import pytest

from stream.runtime import faults
from stream.runtime.faults import PHASES, FaultInjector


@pytest.mark.parametrize("spec", ["sent", "sent:0", "sent:x", "later:2", ":3", "durable:-1"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="STREAM_FAULT_KILL"):
        FaultInjector(spec)


@pytest.mark.parametrize("phase", PHASES)
def test_kills_only_at_the_phase_of_the_batch(monkeypatch: pytest.MonkeyPatch, phase: str) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    injector = FaultInjector(f"{phase}:2")
    for batch in (1, 2, 3):
        injector.next_batch()
        for reached in PHASES:
            injector.reached(reached)
            expected = 1 if (batch, PHASES.index(reached)) >= (2, PHASES.index(phase)) else 0
            assert len(kills) == expected, (batch, reached)
    assert kills[0][1] == signal.SIGKILL


def test_no_spec_never_kills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: pytest.fail("killed"))
    injector = FaultInjector(None)
    for _ in range(3):
        injector.next_batch()
        for phase in PHASES:
            injector.reached(phase)
