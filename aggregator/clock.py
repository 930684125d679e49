"""The clock the aggregator's schedules run on, injected so tests use virtual time.

``now()`` is a monotonic reading in seconds (for schedules and snapshot ages);
``wall_ms()`` is Unix time in milliseconds (for what goes on the wire). Tests
pass a :class:`FakeClock` and move it with ``advance()``; nothing sleeps for
real, so a test of a one-second tick takes microseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch."""

    async def sleep_until(self, deadline: float) -> None:
        """Return once now() >= deadline."""


class SystemClock:
    """The real clock: time.monotonic and asyncio's timer."""

    def now(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class FakeClock:
    """Virtual time. ``advance(dt)`` wakes every sleeper whose deadline passed.

    Wall time moves with the monotonic reading from ``wall_start_ms`` so the
    two never disagree in a test.
    """

    def __init__(self, start: float = 1000.0, wall_start_ms: int = 1_700_000_000_000) -> None:
        self._now = start
        self._start = start
        self._wall_start_ms = wall_start_ms
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall_ms(self) -> int:
        return self._wall_start_ms + round((self._now - self._start) * 1000)

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (tests wait for a loop to park)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers that are due (in deadline order)."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
