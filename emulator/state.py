"""Everything one running emulator remembers: faults, latency, routing and the call log.

The state lives on the aiohttp application and is touched only from its event loop,
so it needs no locks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import web

from .calllog import DEFAULT_CAPACITY, CallLog
from .faults import FaultBook

__all__ = ["DEFAULT_TOTAL_CREDITS", "STATE", "EmulatorState"]

DEFAULT_TOTAL_CREDITS = Decimal(1000)


@dataclass
class EmulatorState:
    """Mutable settings and records of one emulator instance."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    faults: FaultBook = field(default_factory=FaultBook)
    served_as: dict[str, str] = field(default_factory=dict)  # requested id -> id reported as serving
    calls: CallLog = field(default_factory=lambda: CallLog(DEFAULT_CAPACITY))
    total_credits: Decimal = DEFAULT_TOTAL_CREDITS  # what /credits says the account bought
    # Completions being handled now: a test waits for 0 before comparing the log with its
    # ledger, since a call abandoned by a killed client is still answered (and an error fault
    # logged) after its latency.
    in_flight: int = 0

    def delay_seconds(self) -> float:
        """This call's simulated upstream latency: latency_ms ± a uniform jitter, never negative."""
        delay = self.latency_ms
        if self.jitter_ms:
            delay += random.uniform(-self.jitter_ms, self.jitter_ms)
        return max(0.0, delay) / 1000.0

    def reset(self) -> None:
        """Back to a fresh emulator: no faults, no latency, no routing, empty log."""
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.faults.clear()
        self.served_as.clear()
        self.calls.reset()


STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)
