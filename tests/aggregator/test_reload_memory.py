"""A reload to a new registry keeps what the aggregator knew about each check.

A real in-process aggregator on a fake clock, ticking on its own schedule,
reloaded by trigger() (what SIGHUP calls) and by the periodic re-read, and
read back over real gRPC.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from healthplane.aggregator.server import Aggregator, run_aggregator
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap
from tests.aggregator.test_reload import config_reloader

OLD = make_registry(("a", "b", "c"), version="old")
NEW = make_registry(("d", "a", "b"), version="new")      # d added in front, c removed
NEWER = make_registry(("b", "e"), version="newer")
FLEET = make_fleet()                                      # tick 1 s, stale after 3 s, last_known
PERIOD = 30.0


async def until(cond, what: str) -> None:
    """Wait (real time, bounded) for work done in threads or other tasks."""
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def next_tick(agg: Aggregator, clock: FakeClock) -> int:
    seq = agg.state.sequence
    await clock.advance(FLEET.tick)
    await until(lambda: agg.state.sequence > seq, "the next tick")
    return agg.state.sequence


async def query(stub: pb_grpc.HealthStub, *ids: str) -> dict[str, pb.CheckHealth]:
    resp = await stub.Query(pb.QueryRequest(check_ids=list(ids)))
    return {c.check_id: c for c in resp.checks}


async def test_status_and_last_change_survive_adoption_and_sequence_grows():
    clock = FakeClock()
    config = [(OLD, FLEET)]
    async with run_aggregator(OLD, FLEET, clock=clock) as agg, \
            grpc.aio.insecure_channel(f"127.0.0.1:{agg.port}") as ch:
        stub = pb_grpc.HealthStub(ch)
        await until(lambda: agg.state.sequence >= 1, "the first tick")
        await report(agg.port, [snap("use1-a", "us-east", OLD, [1, 1, 1])])
        await next_tick(agg, clock)
        await report(agg.port, [snap("use1-a", "us-east", OLD, [1, 2, 1])])
        await next_tick(agg, clock)
        went_down = clock.wall_ms()
        b = (await query(stub, "b"))["b"]
        assert (b.status, b.last_change_unix_ms) == (pb.STATUS_UNHEALTHY, went_down)
        for _ in range(4):                                   # the only checker goes stale
            await next_tick(agg, clock)
        b = (await query(stub, "b"))["b"]
        assert (b.status, b.reporting_votes, b.last_change_unix_ms) == (
            pb.STATUS_UNHEALTHY, 0, went_down)
        seq_before = (await stub.Get(pb.GetRequest())).sequence

        reloader = config_reloader(agg, lambda: config[0], PERIOD, clock)
        task = asyncio.create_task(reloader.run())
        try:
            # The SIGHUP path: a check added in front moves b from index 1 to 2.
            config[0] = (NEW, FLEET)
            reloader.trigger()
            await until(lambda: agg.reloads["adopted"] == 1, "the triggered reload")
            assert agg.state.registry is NEW
            await next_tick(agg, clock)
            got = await stub.Get(pb.GetRequest())
            assert got.registry_version == "new" and got.sequence > seq_before
            checks = await query(stub, "d", "a", "b")
            assert (checks["b"].status, checks["b"].reporting_votes,
                    checks["b"].last_change_unix_ms) == (pb.STATUS_UNHEALTHY, 0, went_down)
            assert (checks["d"].status, checks["d"].last_change_unix_ms) == (
                pb.STATUS_HEALTHY, 0)                         # never seen
            assert (checks["a"].status, checks["a"].last_change_unix_ms) == (
                pb.STATUS_HEALTHY, 0)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Query(pb.QueryRequest(check_ids=["c"]))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

            # The periodic path, on the fake clock's schedule.
            config[0] = (NEWER, FLEET)
            seq_mid = got.sequence
            while agg.reloads["adopted"] < 2 and clock.now() < 1000.0 + 3 * PERIOD:
                await next_tick(agg, clock)
            await until(lambda: agg.reloads["adopted"] == 2, "the periodic reload")
            await next_tick(agg, clock)
            got = await stub.Get(pb.GetRequest())
            assert got.registry_version == "newer" and got.sequence > seq_mid
            assert got.sequence == agg.state.sequence
            b = (await query(stub, "b"))["b"]
            assert (b.status, b.last_change_unix_ms) == (pb.STATUS_UNHEALTHY, went_down)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_check_coming_back_after_adoption_is_a_change_at_that_tick():
    clock = FakeClock()
    async with run_aggregator(OLD, FLEET, clock=clock, start_ticking=False) as agg, \
            grpc.aio.insecure_channel(f"127.0.0.1:{agg.port}") as ch:
        stub = pb_grpc.HealthStub(ch)
        await report(agg.port, [snap("use1-a", "us-east", OLD, [1, 1, 1])])
        agg.on_tick()
        await report(agg.port, [snap("use1-a", "us-east", OLD, [1, 2, 1])])
        agg.on_tick()
        assert agg.adopt(NEW, FLEET)
        await clock.advance(1.0)
        # The checker reloaded too: b healthy, the new d unhealthy.
        await report(agg.port, [snap("use1-a", "us-east", NEW, [2, 1, 1])])
        pub = agg.on_tick()
        assert pub.changed == 1                               # b; d's first status is none
        checks = await query(stub, "d", "b")
        assert (checks["b"].status, checks["b"].last_change_unix_ms) == (
            pb.STATUS_HEALTHY, clock.wall_ms())
        assert (checks["d"].status, checks["d"].last_change_unix_ms) == (
            pb.STATUS_UNHEALTHY, 0)
