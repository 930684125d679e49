"""GridLoop on a FakeClock: slots at start + k * period, missed slots counted, no drift."""

from __future__ import annotations

import asyncio

import pytest

from healthplane.runtime.clock import FakeClock
from healthplane.runtime.grid import GridLoop


def recorder(clock: FakeClock, cost: float = 0.0):
    runs: list[float] = []

    def work() -> None:
        runs.append(clock.now())
        if cost:
            clock.jump(cost)                  # the work itself takes time
    return runs, work


async def test_runs_on_the_grid_with_no_drift_whatever_the_work_costs():
    clock = FakeClock(start=0.0)
    runs, work = recorder(clock, cost=0.375)
    grid = GridLoop(work, 0.5, clock)
    task = asyncio.create_task(grid.run())
    await clock.advance(1000.0)
    task.cancel()
    # 2001 runs, each exactly on its slot: a costly run never pushes the next one back.
    assert runs == [k * 0.5 for k in range(2001)]
    assert grid.missed == 0 and grid.runs == 2001 and grid.slot == 2000


async def test_a_stall_counts_the_missed_slots_and_runs_the_latest_once():
    clock = FakeClock(start=0.0)
    runs, work = recorder(clock)
    missed: list[int] = []
    grid = GridLoop(work, 1.0, clock, on_missed=lambda n, late: missed.append(n))
    task = asyncio.create_task(grid.run())
    await clock.advance(2.0)                 # runs at 0, 1, 2
    clock.jump(4.5)                          # stalled until 6.5
    await clock.advance(2.0)
    task.cancel()
    # Slots 3, 4, 5 missed; slot 6 runs late at 6.5, then 7 and 8 on the grid.
    assert runs == [0.0, 1.0, 2.0, 6.5, 7.0, 8.0]
    assert grid.missed == 3 and missed == [3]


async def test_a_late_limit_skips_a_slot_too_late_to_be_worth_running():
    clock = FakeClock(start=0.0)
    runs, work = recorder(clock)
    grid = GridLoop(work, 1.0, clock, late_limit=0.5)
    task = asyncio.create_task(grid.run())
    await clock.advance(1.0)                 # runs at 0, 1
    clock.jump(1.25)                         # 2.25: slot 2 is 0.25 late, still fine
    await clock.advance(0.0)
    clock.jump(1.5)                          # 3.75: slot 3 is 0.75 late, skipped
    await clock.advance(0.25)                # slot 4 at 4.0, on the grid
    task.cancel()
    assert runs == [0.0, 1.0, 2.25, 4.0]
    assert grid.missed == 1
    # Two runs are never closer than period - late_limit.
    assert min(b - a for a, b in zip(runs, runs[1:], strict=False)) > 0.5


async def test_work_slower_than_the_period_skips_rather_than_bunches():
    clock = FakeClock(start=0.0)
    runs: list[float] = []
    grid: GridLoop

    def work() -> None:
        runs.append(clock.now())
        clock.jump(1.5)                      # each run takes one and a half periods
        if len(runs) == 8:
            grid.stop()

    grid = GridLoop(work, 1.0, clock)
    task = asyncio.create_task(grid.run())
    await clock.settle()
    assert task.done()
    # A run starts as soon as the last one ends, for the latest slot due; the
    # slots that passed meanwhile (2, 5, 8) are counted, never run in a burst.
    assert runs == [0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.5]
    assert grid.missed == 3


async def test_first_run_one_period_in_and_an_explicit_start():
    clock = FakeClock(start=100.0)
    runs, work = recorder(clock)
    grid = GridLoop(work, 2.0, clock, run_at_start=False)
    task = asyncio.create_task(grid.run(start=101.0))
    await clock.advance(6.0)
    task.cancel()
    assert runs == [103.0, 105.0]


async def test_stop_ends_the_loop_at_once_and_trigger_runs_off_the_grid():
    clock = FakeClock(start=0.0)
    runs, work = recorder(clock)
    grid = GridLoop(work, 10.0, clock, run_at_start=False)
    task = asyncio.create_task(grid.run())
    await clock.advance(3.0)
    grid.trigger()
    await clock.advance(0.0)
    assert runs == [3.0]
    await clock.advance(7.0)                 # the grid did not move: slot 1 at 10
    assert runs == [3.0, 10.0] and grid.runs == 2
    grid.stop()
    await clock.settle()
    assert task.done()


async def test_a_new_period_restarts_the_grid_from_the_latest_run():
    clock = FakeClock(start=0.0)
    runs, work = recorder(clock)
    grid = GridLoop(work, 1.0, clock)
    task = asyncio.create_task(grid.run())
    await clock.advance(2.25)                # runs at 0, 1, 2
    grid.period = 0.5
    await clock.advance(1.0)                 # from 2: 2.5, 3.0 (nothing at once)
    task.cancel()
    assert runs == [0.0, 1.0, 2.0, 2.5, 3.0]


async def test_async_work_is_awaited_and_its_exception_ends_the_loop():
    clock = FakeClock(start=0.0)
    calls: list[float] = []

    async def work() -> None:
        calls.append(clock.now())
        await clock.sleep_until(clock.now() + 0.25)
        if len(calls) == 3:
            raise RuntimeError("boom")

    grid = GridLoop(work, 1.0, clock)
    task = asyncio.create_task(grid.run())
    await clock.advance(5.0)
    assert task.done()
    with pytest.raises(RuntimeError):
        task.result()
    assert calls == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("period", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_periods_are_refused(period: float):
    with pytest.raises(ValueError):
        GridLoop(lambda: None, period, FakeClock())
