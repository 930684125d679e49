"""The clock every schedule runs on, injected so tests own time.

``Clock`` is the whole interface: a monotonic ``now()`` for schedules and
ages, ``wall_ms()`` (Unix milliseconds) for timestamps other processes read,
and ``sleep_until(t)``. :class:`SystemClock` is the real one.
:class:`FakeClock` only moves when a test calls :meth:`FakeClock.advance`,
and runs the event loop until idle at every due time on the way, so a test
of a thousand intervals takes milliseconds and can assert exact counts.
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

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch, for what goes on the wire."""

    async def sleep_until(self, t: float) -> None:
        """Return once now() >= t; yields to the loop even when t is already past."""


class SystemClock:
    """The real clock: time.monotonic() and the running event loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        # sleep(0) still yields, so a loop that is always behind cannot
        # starve the tasks it started.
        await asyncio.sleep(delay if delay > 0 else 0)


# A loop whose ready queue cannot be inspected (uvloop) settles by this many
# yields instead; tests run on the standard loop, where idleness is exact.
_BLIND_ROUNDS = 50
# Far more rounds than any settle needs: reaching it means some task yields
# forever without waiting on anything, which is a bug worth a loud error.
_MAX_ROUNDS = 100_000


class FakeClock:
    """Virtual time for tests: nothing sleeps until advance() moves the clock.

    ``advance(dt)`` visits every due time up to ``now() + dt`` in order; at
    each one it wakes the sleepers due then and runs the event loop until
    idle (no callback ready), so every task that can run has run before time
    moves on. ``jump(dt)`` moves time without waking anyone: the process
    stalled. Wall time moves with the monotonic reading from
    ``wall_start_ms``, so the two never disagree.
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

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (t, next(self._order), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_due(self) -> float | None:
        """The earliest pending deadline, or None."""
        self._drop_done()
        return self._sleepers[0][0] if self._sleepers else None

    def _drop_done(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    async def settle(self) -> None:
        """Run the event loop until idle, without moving time."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        if ready is None:
            for _ in range(_BLIND_ROUNDS):
                await asyncio.sleep(0)
            return
        for _ in range(_MAX_ROUNDS):
            await asyncio.sleep(0)
            if not ready:
                return
        raise RuntimeError("FakeClock: the event loop never went idle (a task yields forever)")

    async def advance(self, dt: float) -> None:
        """Move time forward by dt, waking sleepers in deadline order (see the class)."""
        if dt < 0:
            raise ValueError("time does not go backwards")
        target = self._now + dt
        await self.settle()
        while (due := self.next_due()) is not None and due <= target:
            self._now = max(self._now, due)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, fut = heapq.heappop(self._sleepers)
                if not fut.done():
                    fut.set_result(None)
            await self.settle()
        # A woken task may have jumped past target (work that "took" time).
        self._now = max(self._now, target)
        await self.settle()

    def jump(self, dt: float) -> None:
        """Move time forward without waking anyone: the process "stalled" for dt."""
        if dt < 0:
            raise ValueError("time does not go backwards")
        self._now += dt
