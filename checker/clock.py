"""The clock the scheduler and the reporter run on, injected so tests own time.

``Clock`` is the whole interface: a monotonic ``now()``, a wall-clock
``wall()`` for the ``sent_unix_ms`` field, and ``sleep_until(t)``. The real
clock sleeps on the event loop; :class:`FakeClock` only moves when a test
calls :meth:`FakeClock.advance`, so a test can run a thousand intervals of
schedule in milliseconds and know exactly when each probe started.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds; only differences mean anything."""

    def wall(self) -> float:
        """Unix time in seconds, for timestamps other processes read."""

    async def sleep_until(self, t: float) -> None:
        """Return once now() >= t (at once when t is already past)."""


class MonotonicClock:
    """The real clock: time.monotonic() and the running event loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        # sleep(0) still yields, so a dispatcher that is always behind cannot
        # starve the probes it started.
        await asyncio.sleep(delay if delay > 0 else 0)


class FakeClock:
    """Virtual time for tests: nothing sleeps until advance() moves the clock.

    ``advance(dt)`` walks time forward waking sleepers in deadline order, and
    lets the event loop run after each wake-up so the woken code (and
    anything it starts) settles before time moves on.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (t, next(self._seq), fut))
        await fut

    async def settle(self, rounds: int = 20) -> None:
        """Let ready callbacks run without moving time."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, dt: float) -> None:
        """Move time forward by dt, waking every sleeper whose deadline passes."""
        target = self._now + dt
        while self._sleepers and self._sleepers[0][0] <= target:
            t, _, fut = heapq.heappop(self._sleepers)
            if t > self._now:
                self._now = t
            if not fut.done():
                fut.set_result(None)
            await self.settle()
        self._now = target
        await self.settle()

    def jump(self, dt: float) -> None:
        """Move time forward without waking anyone: the process "stalled" for dt."""
        self._now += dt

    async def run_for(self, duration: float, step: float) -> None:
        """advance() in steps of at most `step` seconds (bounded loop)."""
        end = self._now + duration
        while self._now < end - 1e-12:
            await self.advance(min(step, end - self._now))
