"""Health.Get, Health.Watch and Health.Query over a real gRPC channel."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from healthplane.aggregator.server import run_aggregator
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap

REG = make_registry()
FLEET = make_fleet()


def _channel(port: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}")


async def test_get_before_and_after_the_first_tick():
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        stub = pb_grpc.HealthStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Get(pb.GetRequest())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 2, 1, 2, 0]),
                                snap("euw1-a", "eu-west", REG, [1, 2, 2, 2, 0])])
        s0 = agg.state.sequence
        pub = agg.on_tick()
        got = await stub.Get(pb.GetRequest())
        assert got.sequence == pub.sequence == s0 + 1
        assert got.registry_version == "v1" and got.check_count == 5
        assert list(got.check_ids) == []
        # web-3 has 1 healthy of 2 votes: 1 > 0.18 * 2, healthy. api-1 never seen: healthy.
        assert codec.decode(got.states, 5).tolist() == [1, 2, 1, 2, 1]
        with_ids = await stub.Get(pb.GetRequest(include_check_ids=True))
        assert list(with_ids.check_ids) == list(REG.ids)


async def test_query_per_check_and_per_checker_detail():
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock,
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        stub = pb_grpc.HealthStub(ch)
        s0 = agg.state.sequence
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 1, 0, 0, 0])])
        await clock.advance(1.0)
        await report(agg.port, [snap("euw1-a", "eu-west", REG, [2, 1, 0, 0, 0])])
        agg.on_tick()
        first_ms = clock.wall_ms()
        await clock.advance(0.5)
        # euw1-a now says web-2 is unhealthy; use1-a goes stale.
        await clock.advance(2.0)
        await report(agg.port, [snap("euw1-a", "eu-west", REG, [2, 2, 0, 0, 0])])
        agg.on_tick()
        second_ms = clock.wall_ms()
        resp = await stub.Query(pb.QueryRequest(check_ids=["web-2", "web-1"]))
        assert resp.registry_version == "v1" and resp.sequence == s0 + 2
        assert [c.check_id for c in resp.checks] == ["web-2", "web-1"]
        web2, web1 = resp.checks
        assert (web2.status, web2.healthy_votes, web2.reporting_votes) == (
            pb.STATUS_UNHEALTHY, 0, 1)
        assert web2.last_change_unix_ms == second_ms
        assert (web1.status, web1.healthy_votes, web1.reporting_votes) == (
            pb.STATUS_UNHEALTHY, 0, 1)
        assert first_ms < second_ms
        votes = {v.checker_id: (v.region, v.vote, v.snapshot_age_ms) for v in web2.checkers}
        assert votes == {
            "use1-a": ("us-east", pb.STATUS_HEALTHY, 3500),   # stale, but shown as last seen
            "use1-b": ("us-east", pb.STATUS_UNKNOWN, -1),     # never reported
            "euw1-a": ("eu-west", pb.STATUS_UNHEALTHY, 0),
        }
        everything = await stub.Query(pb.QueryRequest())
        assert [c.check_id for c in everything.checks] == list(REG.ids)


async def test_query_unknown_id_is_not_found_and_names_it():
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        agg.on_tick()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.HealthStub(ch).Query(pb.QueryRequest(check_ids=["web-1", "nope"]))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'nope'" in err.value.details()


async def test_watch_streams_each_tick_in_order():
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        s0 = agg.state.sequence
        agg.on_tick()
        call = pb_grpc.HealthStub(ch).Watch(pb.WatchRequest(include_check_ids=True))
        first = await call.read()
        assert first.sequence == s0 + 1 and list(first.check_ids) == list(REG.ids)
        for expected in (2, 3, 4):
            agg.on_tick()
            got = await asyncio.wait_for(call.read(), 5)
            assert got.sequence == s0 + expected
        assert agg.hub.watchers == 1
        call.cancel()
        for _ in range(200):  # the server notices the cancel asynchronously
            if agg.hub.watchers == 0:
                break
            await asyncio.sleep(0.005)
        assert agg.hub.watchers == 0


async def test_slow_watcher_skips_ticks_and_holds_one_value():
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        s0 = agg.state.sequence
        agg.on_tick()
        call = pb_grpc.HealthStub(ch).Watch(pb.WatchRequest())
        assert (await call.read()).sequence == s0 + 1
        # The watcher stops reading while 500 ticks go by.
        for _ in range(500):
            agg.on_tick()
        await asyncio.sleep(0.05)
        for _ in range(500):
            agg.on_tick()
        seen = []
        while True:
            got = await asyncio.wait_for(call.read(), 5)
            seen.append(got.sequence)
            if got.sequence == s0 + 1001:
                break
        # It caught up to the newest tick after a handful of messages, not 1000.
        assert seen == sorted(seen) and len(seen) < 10
        assert agg.hub.skipped >= 990
        call.cancel()


async def test_reflection_and_grpc_health_are_on():
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        hs = health_pb2_grpc.HealthStub(ch)
        for service in ("", "healthplane.v1.Health", "healthplane.v1.Ingest"):
            resp = await hs.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        call = refl.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        resp = await call.read()
        names = {s.name for s in resp.list_services_response.service}
        assert {"healthplane.v1.Health", "healthplane.v1.Ingest",
                "grpc.health.v1.Health"} <= names
        await call.done_writing()


async def test_big_query_has_per_check_figures_without_checker_detail(monkeypatch):
    import healthplane.aggregator.health_service as hs

    monkeypatch.setattr(hs, "DETAIL_LIMIT", 2)
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 2, 1, 2, 0])])
        agg.on_tick()
        stub = pb_grpc.HealthStub(ch)
        small = await stub.Query(pb.QueryRequest(check_ids=["web-1", "web-2"]))
        assert all(len(c.checkers) == 3 for c in small.checks)
        big = await stub.Query(pb.QueryRequest())
        assert [c.check_id for c in big.checks] == list(REG.ids)
        assert all(len(c.checkers) == 0 for c in big.checks)
        assert [(c.status, c.healthy_votes, c.reporting_votes) for c in big.checks] == [
            (1, 1, 1), (2, 0, 1), (1, 1, 1), (2, 0, 1), (1, 0, 0)]


async def test_query_votes_and_checker_rows_come_from_the_same_tick():
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock,
                              start_ticking=False) as agg, _channel(agg.port) as ch:
        stub = pb_grpc.HealthStub(ch)
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 1, 0, 0, 0]),
                                snap("euw1-a", "eu-west", REG, [1, 2, 0, 0, 0])])
        agg.on_tick()
        await clock.advance(0.3)
        # Between two ticks both checkers change their minds; the answer
        # still shows the tick's votes, not a mix.
        await report(agg.port, [snap("use1-a", "us-east", REG, [2, 2, 0, 0, 0]),
                                snap("euw1-a", "eu-west", REG, [2, 1, 0, 0, 0])])
        resp = await stub.Query(pb.QueryRequest(check_ids=["web-1", "web-2"]))
        for ch_ in resp.checks:
            counted = [v for v in ch_.checkers if 0 <= v.snapshot_age_ms <= 3000]
            assert ch_.healthy_votes == sum(v.vote == pb.STATUS_HEALTHY for v in counted)
            assert ch_.reporting_votes == sum(v.vote != pb.STATUS_UNKNOWN for v in counted)
        web1 = {v.checker_id: v.vote for v in resp.checks[0].checkers}
        assert web1["use1-a"] == web1["euw1-a"] == pb.STATUS_HEALTHY
        agg.on_tick()
        resp = await stub.Query(pb.QueryRequest(check_ids=["web-1"]))
        web1 = {v.checker_id: v.vote for v in resp.checks[0].checkers}
        assert web1["use1-a"] == web1["euw1-a"] == pb.STATUS_UNHEALTHY
        assert (resp.checks[0].healthy_votes, resp.checks[0].reporting_votes) == (0, 2)
