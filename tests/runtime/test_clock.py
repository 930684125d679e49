"""FakeClock: virtual time that runs the loop until idle at every due time."""

from __future__ import annotations

import asyncio

import pytest

from healthplane.runtime.clock import FakeClock, SystemClock


async def test_advance_wakes_sleepers_in_deadline_order_at_their_time():
    clock = FakeClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, t: float) -> None:
        await clock.sleep_until(t)
        woke.append((name, clock.now()))

    for name, t in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("late", 9.0)):
        asyncio.create_task(sleeper(name, t))
    await clock.advance(5.0)
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == 5.0 and clock.sleepers == 1


async def test_every_runnable_task_runs_before_time_moves_on():
    """A chain of work started at one due time finishes at that time, however long."""
    clock = FakeClock(start=0.0)
    seen: list[tuple[int, float]] = []

    async def chain(depth: int) -> None:
        seen.append((depth, clock.now()))
        if depth < 200:
            await asyncio.sleep(0)              # many loop rounds, no time
            asyncio.create_task(chain(depth + 1))

    async def starter() -> None:
        await clock.sleep_until(1.0)
        await chain(0)

    asyncio.create_task(starter())
    await clock.advance(1.0)
    assert len(seen) == 201 and {t for _, t in seen} == {1.0}


async def test_a_periodic_sleeper_runs_an_exact_number_of_times():
    clock = FakeClock(start=0.0)
    runs: list[float] = []

    async def every_quarter() -> None:
        k = 1
        while True:
            await clock.sleep_until(k * 0.25)
            runs.append(clock.now())
            k += 1

    task = asyncio.create_task(every_quarter())
    await clock.advance(10.0)
    task.cancel()
    assert runs == [k * 0.25 for k in range(1, 41)]


async def test_jump_moves_time_without_waking_and_advance_wakes_late():
    clock = FakeClock(start=0.0, wall_start_ms=1_000)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep_until(1.0)
        woke.append(clock.now())

    asyncio.create_task(sleeper())
    await clock.settle()
    clock.jump(3.0)
    await clock.settle()
    assert woke == [] and clock.wall_ms() == 4_000
    await clock.advance(0.0)
    assert woke == [3.0]                         # woken late, at the time it got to run


async def test_work_that_jumps_past_the_target_never_moves_time_back():
    clock = FakeClock(start=0.0)

    async def slow() -> None:
        await clock.sleep_until(1.0)
        clock.jump(5.0)                          # CPU-bound work that "took" 5 s

    asyncio.create_task(slow())
    await clock.advance(2.0)
    assert clock.now() == 6.0
    with pytest.raises(ValueError):
        await clock.advance(-1.0)


async def test_past_deadlines_still_yield():
    clock = FakeClock(start=5.0)
    other_ran = asyncio.Event()

    async def other() -> None:
        other_ran.set()

    asyncio.create_task(other())
    await clock.sleep_until(1.0)                 # already past: returns, but yields first
    assert other_ran.is_set()


async def test_system_clock_is_monotonic_and_sleeps():
    clock = SystemClock()
    t0 = clock.now()
    await clock.sleep_until(t0 + 0.01)
    assert clock.now() >= t0 + 0.01
    assert clock.wall_ms() > 1_600_000_000_000
