"""HealthConsumer against real grpc.aio Health servers on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from healthplane.aggregator.dns.consumer import HealthConsumer, Snapshot
from healthplane.proto import codec

from tests.aggregator.dns.fakes import FakeHealth, reserved_port

H, U, X = codec.HEALTHY, codec.UNHEALTHY, codec.UNKNOWN
IDS = ["a", "b", "c"]


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll cond until it holds; the deadline only bounds a test that is broken."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[FakeHealth, FakeHealth]]:
    a, b = FakeHealth(IDS), FakeHealth(IDS)
    await a.start()
    await b.start()
    a.set(a=H, b=U)
    b.set(a=U, b=H)
    yield a, b
    await a.stop()
    await b.stop()


def fast_consumer(*addresses: str, **kw: object) -> HealthConsumer:
    opts: dict[str, object] = dict(default_tick=0.1, backoff_base=0.05, backoff_cap=0.2,
                                   connect_timeout=0.5)
    opts.update(kw)
    return HealthConsumer(list(addresses), **opts)  # type: ignore[arg-type]


async def test_everything_unknown_before_first_snapshot() -> None:
    consumer = fast_consumer("127.0.0.1:1")
    assert consumer.status("a") == X
    assert consumer.age() is None and consumer.snapshot is None


async def test_follows_snapshots_and_answers_status(pair: tuple[FakeHealth, FakeHealth]) -> None:
    a, _ = pair
    seen = []
    # default_tick differs from the fake's 0.1 s tick, so only learning gets 0.1
    async with fast_consumer(a.address, default_tick=0.5) as consumer:
        consumer.add_listener(seen.append)
        snap = await consumer.wait_for_snapshot(10)
        assert snap.source == a.address and consumer.current == a.address
        assert [consumer.status(i) for i in IDS] == [H, U, X]
        assert consumer.status("not-in-registry") == X
        a.set(a=U)
        await until(lambda: consumer.status("a") == U)
        await until(lambda: len(consumer._decoder.periods) >= 2)
        # learned from the snapshots' tick stamps, not from when they arrived
        assert consumer.tick_period == pytest.approx(0.1, abs=1e-3)
    # ids were asked for once, then the stream was reopened without them
    assert a.watch_requests[:2] == [True, False]
    assert seen and all(s.registry_version == "v1" for s in seen)


async def test_updates_iterator_skips_rather_than_queues(
        pair: tuple[FakeHealth, FakeHealth]) -> None:
    a, _ = pair
    async with fast_consumer(a.address) as consumer:
        updates = consumer.updates()
        async with asyncio.timeout(10):
            first = await updates.__anext__()
        # several ticks are adopted while we do not read
        await until(lambda: consumer.snapshot is not None
                    and consumer.snapshot.sequence >= first.sequence + 3)
        # A snapshot is waiting, so this returns without yielding to the loop
        # and nothing newer can arrive in between.
        second = await updates.__anext__()
        assert second.sequence >= first.sequence + 3
        assert second is consumer.snapshot
        await updates.aclose()


async def test_switches_when_current_dies(pair: tuple[FakeHealth, FakeHealth]) -> None:
    a, b = pair
    async with fast_consumer(a.address, b.address) as consumer:
        await until(lambda: consumer.current == a.address)
        assert consumer.status("a") == H
        await a.stop()
        await until(lambda: consumer.current == b.address)
        await until(lambda: consumer.snapshot is not None
                    and consumer.snapshot.source == b.address)
        assert consumer.status("a") == U and consumer.status("b") == H
        assert consumer.switches >= 1


async def test_switches_when_current_stalls() -> None:
    a, b = FakeHealth(IDS), FakeHealth(IDS)
    adopted: list[tuple[Snapshot, float]] = []     # each snapshot, tick period then
    with reserved_port() as b_port:
        await a.start()
        b.set(b=H)
        # b is down until a stalls: a tick that a loaded machine delivers late
        # can only bounce the consumer off b and back to a, never settle it on b.
        async with fast_consumer(a.address, f"127.0.0.1:{b_port}") as consumer:
            consumer.add_listener(lambda s: adopted.append((s, consumer.tick_period)))
            try:
                await until(lambda: consumer.current == a.address
                            and len(consumer._decoder.periods) >= 1)
                await b.start(b_port)
                a.stalled = True      # stream stays open, ticks stop
                t0 = time.monotonic()
                await until(lambda: consumer.current == b.address)
                # 2 tick periods (0.2 s) plus a connect; the bound is loose
                # for a shared machine, the logic is checked exactly below
                assert time.monotonic() - t0 < 3.0
                assert consumer.status("b") == H
            finally:
                await a.stop()
                await b.stop()
    # It left a only after no new tick for stall_periods (2) tick periods.
    first_b = next(i for i, (s, _) in enumerate(adopted) if s.source == b.address)
    last_a, period = adopted[first_b - 1]
    assert last_a.source == a.address
    assert adopted[first_b][0].received - last_a.received >= 2 * period - 1e-3


async def test_keeps_last_snapshot_and_reports_age_when_none_reachable(
        pair: tuple[FakeHealth, FakeHealth]) -> None:
    a, b = pair
    async with fast_consumer(a.address, b.address) as consumer:
        await until(lambda: consumer.current == a.address)
        held = consumer.snapshot
        await a.stop()
        await b.stop()
        await until(lambda: consumer.current is None)
        await asyncio.sleep(0.5)
        assert consumer.snapshot is not None
        assert consumer.status("b") in (U, H)          # still the last known answer
        age = consumer.age()
        assert age is not None and age >= 0.4
        assert consumer.snapshot.source in (a.address, b.address)
        assert held is not None


async def test_comes_back_when_an_aggregator_returns() -> None:
    # The port stays reserved between the two servers, so nothing else on
    # the machine can take it while the aggregator is down.
    with reserved_port() as port:
        a = FakeHealth(IDS)
        addr = await a.start(port)
        async with fast_consumer(addr) as consumer:
            await consumer.wait_for_snapshot(10)
            await a.stop()
            await until(lambda: consumer.current is None)
            again = FakeHealth(IDS)
            await again.start(port)     # a restarted aggregator: its sequence starts over
            again.set(c=U)
            try:
                await until(lambda: consumer.status("c") == U)
                assert consumer.current == addr
                assert consumer.snapshot is not None and consumer.snapshot.source == addr
            finally:
                await again.stop()


async def test_registry_change_fetches_new_ids(pair: tuple[FakeHealth, FakeHealth]) -> None:
    a, _ = pair
    async with fast_consumer(a.address) as consumer:
        await until(lambda: consumer.status("a") == H)
        a.set_registry(["z", "a"], "v2")
        a.set(z=U, a=H)
        await until(lambda: consumer.snapshot is not None
                    and consumer.snapshot.registry_version == "v2")
        assert consumer.status("z") == U and consumer.status("a") == H
        assert consumer.status("b") == X
    assert a.watch_requests.count(True) >= 2


async def test_malformed_snapshot_is_dropped_and_counted(
        pair: tuple[FakeHealth, FakeHealth]) -> None:
    a, b = pair

    bad_snapshot = a.snapshot

    def broken(with_ids: bool):  # type: ignore[no-untyped-def]
        msg = bad_snapshot(with_ids)
        msg.states = b"\xff\xff"     # wrong size for 3 checks
        return msg

    async with fast_consumer(a.address, b.address) as consumer:
        await until(lambda: consumer.current == a.address)
        a.snapshot = broken          # type: ignore[method-assign]
        # a now sends only garbage: no new usable tick, so the consumer moves on
        await until(lambda: consumer.current == b.address)
        assert consumer.malformed >= 1
