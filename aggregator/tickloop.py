"""The fixed-schedule tick loop.

Tick k runs at ``start + k * interval``, never ``now + interval``, so a slow
tick does not push every later one back (no drift). When the loop falls
more than a whole interval behind (a stalled host, a long GC), the missed
slots are counted and skipped rather than run back to back. Nothing but the
clock drives it: snapshots arriving never trigger a tick. The schedule is
the shared :class:`~healthplane.runtime.grid.GridLoop`.

The work of a tick is the callback ``on_tick()``, separate from the loop
that waits, so tests call it directly with prepared slots. The loop counts
no ticks itself: the callback numbers them (one counter, in the aggregator's
state); the loop counts only what it alone knows, slots missed and
callbacks that raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from healthplane.runtime.clock import Clock
from healthplane.runtime.grid import GridLoop

log = logging.getLogger("healthplane.aggregator.tick")


class TickLoop:
    """Calls on_tick() every interval seconds on clock."""

    def __init__(self, on_tick: Callable[[], Any], interval: float, clock: Clock) -> None:
        if interval <= 0:
            raise ValueError(f"tick interval must be > 0, got {interval}")
        self.on_tick = on_tick
        self.interval = interval
        self.clock = clock
        self.failed = 0                     # ticks whose callback raised
        self._grid = GridLoop(self._tick, interval, clock, on_missed=self._behind)

    @property
    def missed(self) -> int:
        """Schedule slots skipped because the loop was late."""
        return self._grid.missed

    @missed.setter
    def missed(self, value: int) -> None:
        self._grid.missed = value

    async def run(self) -> None:
        """Tick forever (cancel to stop). The first tick runs at once."""
        await self._grid.run()

    def _behind(self, skipped: int, late: float) -> None:
        log.warning("tick loop behind schedule; skipped ticks",
                    extra={"late_s": round(late, 3), "skipped": skipped})

    def _tick(self) -> None:
        try:
            self.on_tick()
        except Exception:
            # A tick that fails must not stop the data plane: the next
            # one starts from the slots again. Logged with its traceback
            # because it is a bug, not bad input.
            self.failed += 1
            log.exception("tick failed")
