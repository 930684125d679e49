"""AnswerKeeper: one rebuild per snapshot, and fail-open once the snapshot is too old."""

from __future__ import annotations

import asyncio
import contextlib

import dns.name
import dns.rdatatype
from healthplane.aggregator.dns.answers import AnswerTable
from healthplane.aggregator.dns.keeper import AnswerKeeper
from healthplane.proto import codec
from healthplane.proto.config.model import Record, RecordValue, Zone

from tests.aggregator.dns.fakes import FakeHealth
from tests.aggregator.dns.test_consumer import fast_consumer, until

ZONE = Zone(zone="example.test.", ttl=30, records=(
    Record(name="www.example.test.", type="A", policy="multivalue",
           values=(RecordValue("192.0.2.1", "a"), RecordValue("192.0.2.2", "b"))),))


def www(table: AnswerTable) -> set[str]:
    found = table.lookup(dns.name.from_text("www.example.test."), dns.rdatatype.A)
    return {rd.to_text() for rrset in found.rrsets for rd in rrset}


async def test_rebuilds_per_snapshot_and_fails_open_when_stale() -> None:
    fake = FakeHealth(["a", "b"])
    await fake.start()
    fake.set(a=codec.UNHEALTHY, b=codec.HEALTHY)
    published: list[AnswerTable] = []
    consumer = fast_consumer(fake.address)
    keeper = AnswerKeeper(ZONE, consumer, published.append, stale_after=0.4)
    assert www(keeper.table) == {"192.0.2.1", "192.0.2.2"}    # before any snapshot
    async with consumer:
        task = asyncio.create_task(keeper.run())
        try:
            await until(lambda: bool(published) and www(published[-1]) == {"192.0.2.2"})
            assert keeper.rebuilds == consumer.accepted + 1    # +1: the initial table
            serial = published[-1].serial
            await fake.stop()
            await until(lambda: keeper.failing_open, timeout=5)
            assert www(published[-1]) == {"192.0.2.1", "192.0.2.2"}
            assert published[-1].serial > serial               # the answer changed
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_stale_after_zero_keeps_last_known() -> None:
    fake = FakeHealth(["a", "b"])
    await fake.start()
    fake.set(a=codec.UNHEALTHY)
    published: list[AnswerTable] = []
    consumer = fast_consumer(fake.address)
    keeper = AnswerKeeper(ZONE, consumer, published.append, stale_after=0)
    async with consumer:
        task = asyncio.create_task(keeper.run())
        try:
            await until(lambda: bool(published) and www(published[-1]) == {"192.0.2.2"})
            await fake.stop()
            await asyncio.sleep(0.6)
            assert not keeper.is_stale() and www(keeper.table) == {"192.0.2.2"}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
