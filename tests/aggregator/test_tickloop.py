"""The tick loop on a fake clock: fixed schedule, no drift, missed slots counted."""

from __future__ import annotations

import asyncio

from healthplane.aggregator.tickloop import TickLoop

from healthplane.runtime.clock import FakeClock


async def test_ticks_at_start_plus_k_intervals_whatever_the_tick_costs():
    clock = FakeClock(start=100.0)
    runs: list[tuple[int, float]] = []

    def on_tick() -> None:
        runs.append((len(runs) + 1, clock.now()))
        clock.jump(0.25)  # a tick that takes 0.25 s must not push the next one back

    loop = TickLoop(on_tick, 1.0, clock)
    task = asyncio.create_task(loop.run())
    await clock.settle()
    for _ in range(4):
        await clock.advance(0.75)
    task.cancel()
    assert runs == [(1, 100.0), (2, 101.0), (3, 102.0), (4, 103.0), (5, 104.0)]
    assert loop.missed == 0


async def test_a_stall_skips_missed_slots_instead_of_bunching():
    clock = FakeClock(start=0.0)
    runs: list[tuple[int, float]] = []
    loop = TickLoop(lambda: runs.append((len(runs) + 1, clock.now())), 1.0, clock)
    task = asyncio.create_task(loop.run())
    await clock.settle()
    clock.jump(3.5)  # the host froze for 3.5 s
    await clock.settle()
    await clock.advance(0.5)
    task.cancel()
    # One late tick at 3.5 (for slot 3), slots 1 and 2 skipped, then back on the grid at 4.
    assert runs == [(1, 0.0), (2, 3.5), (3, 4.0)]
    assert loop.missed == 2


async def test_a_failing_tick_is_counted_and_the_loop_goes_on():
    clock = FakeClock(start=0.0)
    seen: list[int] = []

    def on_tick() -> None:
        seen.append(len(seen) + 1)
        if len(seen) == 2:
            raise RuntimeError("boom")

    loop = TickLoop(on_tick, 1.0, clock)
    task = asyncio.create_task(loop.run())
    await clock.settle()
    for _ in range(2):
        await clock.advance(1.0)
    task.cancel()
    assert seen == [1, 2, 3] and loop.failed == 1


async def test_messages_do_not_trigger_ticks():
    """Flooding the slots between ticks changes nothing about when ticks run."""
    from healthplane.aggregator.server import Aggregator
    from healthplane.proto import codec

    from tests.aggregator.conftest import make_fleet, make_registry

    clock = FakeClock(start=0.0)
    reg = make_registry()
    agg = Aggregator(reg, make_fleet(), clock=clock)
    s0 = agg.state.sequence
    task = asyncio.create_task(agg.tick_loop.run())
    await clock.settle()
    assert agg.state.sequence == s0 + 1
    for _ in range(1000):
        agg.state.accept("use1-a", "us-east", "v1", 5, codec.encode([1, 1, 1, 1, 1]))
    await clock.settle()
    assert agg.state.sequence == s0 + 1
    await clock.advance(1.0)
    assert agg.state.sequence == s0 + 2
    task.cancel()
