"""The fixed-grid loop: one piece of work at ``start + k * period``, no drift.

Every periodic schedule in healthplane (the checker's reports, the
aggregator's tick, the DNS front's stale check, ...) is a :class:`GridLoop`,
in the style of twisted's ``LoopingCall``:

* Slot k is due at ``start + k * period``, computed from the start time,
  never ``now + period``: slow work or a slow wake-up does not push every
  later slot back.
* A slot reached ``late_limit`` or more after its time (a stalled host, a
  long GC, work that took longer than a period) is **missed**: counted in
  :attr:`GridLoop.missed` and skipped, never run back to back with others
  to catch up. The loop runs the latest slot that is still within the
  limit, or waits for the next one.
* The clock is injected, and the work is a separate callable
  (``work() -> None``, or a coroutine function), so tests call the work
  directly or drive the loop on a :class:`~healthplane.runtime.clock.FakeClock`.

``late_limit`` defaults to the whole period: the latest slot already due
always runs (it is less than a period late), and runs are never closer
together than the work takes. A smaller limit keeps runs more than
``period - late_limit`` apart.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable

from healthplane.runtime.clock import Clock

Work = Callable[[], "Awaitable[None] | None"]
MissedHook = Callable[[int, float], None]


class GridLoop:
    """Calls ``work()`` once per slot of a fixed grid until stop().

    run_at_start: slot 0 (at the start time) runs at once; when False the
        first run is one period in.
    on_missed: called as ``on_missed(count, late_seconds)`` whenever slots
        are skipped (for a log line); counting happens either way.

    An exception from ``work`` ends :meth:`run` with it: a caller that must
    survive a failing run catches inside its work.
    """

    def __init__(self, work: Work, period: float, clock: Clock, *,
                 late_limit: float | None = None, run_at_start: bool = True,
                 on_missed: MissedHook | None = None) -> None:
        _check_period(period)
        self.work = work
        self.clock = clock
        self._period = period
        self._late_limit = late_limit
        self.run_at_start = run_at_start
        self.on_missed = on_missed
        self.missed = 0         # slots skipped because the loop reached them too late
        self.runs = 0           # calls of work, on the grid or triggered
        self.slot = -1          # index of the latest slot run on the grid
        self._start = 0.0
        self._anchor: float | None = None   # due time of the latest slot run
        self._stopped = False
        self._triggered = False
        self._regrid = False
        self._poke = asyncio.Event()

    @property
    def period(self) -> float:
        return self._period

    @period.setter
    def period(self, value: float) -> None:
        """A new period: the grid restarts from the latest slot run, no run in between."""
        _check_period(value)
        if value != self._period:
            self._period = value
            self._regrid = True
            self._poke.set()

    @property
    def late_limit(self) -> float:
        return self._period if self._late_limit is None else self._late_limit

    @late_limit.setter
    def late_limit(self, value: float | None) -> None:
        self._late_limit = value

    def due(self, k: int) -> float:
        """When slot k of the current grid is due."""
        return self._start + k * self._period

    def stop(self) -> None:
        """End run() at once (work already running finishes first)."""
        self._stopped = True
        self._poke.set()

    def trigger(self) -> None:
        """Run the work once as soon as possible, off the grid; the grid stays."""
        self._triggered = True
        self._poke.set()

    async def run(self, start: float | None = None) -> None:
        """Run the grid from start (default now) until stop()."""
        self._start = self.clock.now() if start is None else start
        k = 0 if self.run_at_start else 1
        while not self._stopped:
            reached = await self._wait(self.due(k))
            if self._stopped:
                return
            if self._regrid:
                self._regrid = False
                self._start = self._anchor if self._anchor is not None else self._start
                k = 1
                continue
            if not reached:
                if self._triggered:
                    self._triggered = False
                    await self._call()
                continue
            # A slot and a trigger at once: one run serves both.
            self._triggered = False
            now = self.clock.now()
            # The latest slot already due; max() guards against rounding
            # putting `now` a hair before slot k.
            j = max(k, math.floor((now - self._start) / self._period))
            late = now - self.due(j)
            skipped = j - k
            if late >= self.late_limit:
                skipped += 1
                j += 1
            if skipped:
                self.missed += skipped
                if self.on_missed is not None:
                    self.on_missed(skipped, now - self.due(k))
            k = j
            if self.due(k) > now:
                continue            # every due slot was too late: wait for slot k
            self.slot = k
            self._anchor = self.due(k)
            await self._call()
            k += 1

    async def _call(self) -> None:
        self.runs += 1
        result = self.work()
        if inspect.isawaitable(result):
            await result

    async def _wait(self, t: float) -> bool:
        """Sleep until t; False when woken early by stop(), trigger() or a new period."""
        if self._poke.is_set():
            self._poke.clear()
            return self.clock.now() >= t and not self._regrid
        if t <= self.clock.now():
            await self.clock.sleep_until(t)      # yields, so a late loop cannot starve others
            return True
        sleeper = asyncio.ensure_future(self.clock.sleep_until(t))
        poked = asyncio.ensure_future(self._poke.wait())
        try:
            await asyncio.wait((sleeper, poked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            poked.cancel()
        self._poke.clear()
        return self.clock.now() >= t and not self._regrid


def _check_period(period: float) -> None:
    if not period > 0 or math.isinf(period):
        raise ValueError(f"period must be a positive number of seconds, got {period}")
