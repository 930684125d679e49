"""The fixed-schedule tick loop.

Tick k runs at ``start + k * interval``, never ``now + interval``, so a slow
tick does not push every later one back (no drift). When the loop falls
more than a whole interval behind (a stalled host, a long GC), the missed
slots are counted and skipped rather than run back to back. Nothing but the
clock drives it: snapshots arriving never trigger a tick.

The work of a tick is the callback ``on_tick(sequence)``, separate from the
loop that waits, so tests call it directly with prepared slots.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from healthplane.aggregator.clock import Clock

log = logging.getLogger("healthplane.aggregator.tick")


class TickLoop:
    """Calls on_tick(sequence) every interval seconds on clock, sequence 1, 2, 3, ..."""

    def __init__(self, on_tick: Callable[[int], None], interval: float, clock: Clock,
                 first_sequence: int = 1) -> None:
        if interval <= 0:
            raise ValueError(f"tick interval must be > 0, got {interval}")
        self.on_tick = on_tick
        self.interval = interval
        self.clock = clock
        self.sequence = first_sequence - 1  # last sequence run
        self.missed = 0                     # schedule slots skipped because we were late
        self.failed = 0                     # ticks whose callback raised

    async def run(self) -> None:
        """Tick forever (cancel to stop). The first tick runs at once."""
        start = self.clock.now()
        k = 0
        while True:
            due = start + k * self.interval
            await self.clock.sleep_until(due)
            late = self.clock.now() - due
            if late >= self.interval:
                skip = math.floor(late / self.interval)
                self.missed += skip
                k += skip
                log.warning("tick loop %.3fs behind schedule; skipped %d tick(s)", late, skip)
            self.sequence += 1
            try:
                self.on_tick(self.sequence)
            except Exception:
                # A tick that fails must not stop the data plane: the next
                # one starts from the slots again. Logged with its traceback
                # because it is a bug, not bad input.
                self.failed += 1
                log.exception("tick %d failed", self.sequence)
            k += 1
