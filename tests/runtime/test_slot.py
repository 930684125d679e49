"""LatestSlot: a writer overwrites, a reader awaits, nothing queues."""

from __future__ import annotations

import asyncio

from healthplane.runtime.slot import LatestSlot


async def test_a_reader_waits_for_a_value_and_gets_the_newest():
    slot: LatestSlot[int] = LatestSlot()
    reader = asyncio.create_task(slot.take())
    await asyncio.sleep(0)
    assert not reader.done()
    assert slot.put(1) is False
    assert await reader == 1
    assert not slot.full


async def test_values_not_taken_are_replaced_and_counted_never_queued():
    slot: LatestSlot[int] = LatestSlot()
    replaced = [slot.put(i) for i in range(1000)]
    assert replaced == [False] + [True] * 999 and slot.replaced == 999
    assert await slot.take() == 999
    assert slot.take_nowait() is None


async def test_put_back_keeps_a_newer_value():
    slot: LatestSlot[str] = LatestSlot()
    slot.put("old")
    taken = await slot.take()
    slot.put("new")
    slot.put_back(taken)                     # could not use "old": "new" stays
    assert slot.take_nowait() == "new"
    slot.put_back("old")                     # empty: it goes back
    assert slot.take_nowait() == "old" and slot.replaced == 0


async def test_close_wakes_the_reader_after_what_is_left():
    slot: LatestSlot[int] = LatestSlot()
    waiting = asyncio.create_task(slot.take())
    await asyncio.sleep(0)
    slot.close()
    assert await waiting is None
    other: LatestSlot[int] = LatestSlot()
    other.put(7)
    other.close()
    assert other.closed and await other.take() == 7
    assert await other.take() is None


async def test_a_slow_reader_sees_only_the_latest_of_a_burst():
    slot: LatestSlot[int] = LatestSlot()
    seen: list[int] = []

    async def reader() -> None:
        while (v := await slot.take()) is not None:
            seen.append(v)
            await asyncio.sleep(0)           # slower than the writer

    task = asyncio.create_task(reader())
    for i in range(100):
        slot.put(i)
        if i % 10 == 9:
            await asyncio.sleep(0)
    slot.close()
    await task
    assert seen == sorted(seen) and seen[-1] == 99 and len(seen) < 100
    assert slot.replaced == 100 - len(seen)
