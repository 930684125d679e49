"""Ingest through a real gRPC channel: every malformed kind is dropped and counted."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from healthplane.aggregator.server import run_aggregator
from healthplane.aggregator.state import max_message_bytes, transport_limit
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap

REG = make_registry()
FLEET = make_fleet()
GOOD = [1, 2, 1, 0, 1]


def _with(**changes) -> pb.CheckerSnapshot:
    msg = snap("use1-a", "us-east", REG, GOOD)
    for k, v in changes.items():
        setattr(msg, k, v)
    return msg


BAD = [
    ("unknown_checker", _with(checker_id="nobody")),
    ("region_mismatch", _with(region="eu-west")),
    ("unknown_version", _with(registry_version="v0-never-heard-of")),
    ("check_count_mismatch", _with(check_count=6)),
    ("wrong_length", _with(states=codec.encode(GOOD) + b"\x00")),
    ("wrong_length", _with(states=b"")),
    ("padding_set", _with(states=codec.encode(GOOD)[:1] + b"\x41")),
    ("reserved_state", _with(states=b"\xc0\x40")),
    ("malformed", b"\xff\xff\xff\xff"),
]


@pytest.mark.parametrize(("reason", "msg"), BAD, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD)])
async def test_bad_snapshot_dropped_counted_and_stream_goes_on(reason, msg):
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        # Sequences around the bad one's, so only its own fault can drop it.
        first = snap("use1-a", "us-east", REG, GOOD, seq=0)
        last = snap("use1-a", "us-east", REG, GOOD, seq=1 << 62)
        summary = await report(agg.port, [first, msg, last])
        if reason == "unknown_version":
            # That one ends the stream, naming the versions it accepts, so the
            # checker can go on in one of them (see test_rollout_*).
            assert (summary.accepted, summary.dropped) == (1, 1)
            assert list(summary.registry_versions) == ["v1"]
        else:
            assert (summary.accepted, summary.dropped) == (2, 1)
        assert dict(agg.state.counters.dropped) == {reason: 1}
        # The slot holds the good snapshot, not the bad one.
        assert bytes(agg.state.slots.row(0)) == codec.encode(GOOD)
        # And the aggregator still serves.
        pub = agg.on_tick()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{agg.port}") as ch:
            got = await pb_grpc.HealthStub(ch).Get(pb.GetRequest())
        assert got.sequence == pub.sequence


async def test_oversized_dropped_without_parsing_and_stream_goes_on():
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        huge = _with(states=b"\x00" * (max_message_bytes(REG.check_count) + 10))
        good = snap("use1-a", "us-east", REG, GOOD)
        summary = await report(agg.port, [huge, good])
        assert (summary.accepted, summary.dropped) == (1, 1)
        assert agg.state.counters.dropped["oversized"] == 1


async def test_over_transport_limit_ends_only_that_stream():
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        monster = _with(states=b"\x00" * (transport_limit(REG.check_count) + 1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await report(agg.port, [monster])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The server is still serving and still accepting on a new stream.
        summary = await report(agg.port, [snap("use1-b", "us-east", REG, GOOD)])
        assert summary.accepted == 1


async def test_latest_snapshot_wins_one_slot_per_checker():
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock, start_ticking=False) as agg:
        msgs = [snap("euw1-a", "eu-west", REG, [s, 0, 0, 0, 0], seq=i)
                for i, s in enumerate([1, 2, 1, 2, 2], start=1)]
        summary = await report(agg.port, msgs)
        assert summary.accepted == 5
        row = agg.state.rows["euw1-a"]
        assert bytes(agg.state.slots.row(row)) == codec.encode([2, 0, 0, 0, 0])
        assert agg.state.received[row] == clock.now()


async def test_previous_registry_version_is_remapped_by_id():
    old = make_registry(("a", "b", "c"), version="old")
    new = make_registry(("c", "x", "a"), version="new")
    fleet = make_fleet()
    async with run_aggregator(old, fleet, clock=FakeClock(),
                              start_ticking=False) as agg:
        agg.adopt(new, fleet)
        # A checker still on "old": a healthy, b unhealthy, c unhealthy.
        summary = await report(agg.port, [snap("use1-a", "us-east", old, [1, 2, 2])])
        assert summary.accepted == 1 and agg.state.counters.remapped == 1
        # Laid out on "new": c, x (not in old: unknown), a.
        row = agg.state.rows["use1-a"]
        assert codec.unpack(bytes(agg.state.slots.row(row)), 3).tolist() == [2, 0, 1]
        pub = agg.on_tick()
        assert pub.registry.version == "new"
        assert codec.unpack(pub.states, 3).tolist()[0] == codec.UNHEALTHY
        assert codec.unpack(pub.states, 3).tolist()[2] == codec.HEALTHY
        # Two versions back is unknown: ignored and counted.
        agg.adopt(make_registry(("a",), version="newer"), fleet)
        summary = await report(agg.port, [snap("use1-a", "us-east", old, [1, 2, 2])])
        assert summary.dropped == 1
        assert agg.state.counters.dropped["unknown_version"] == 1


async def test_random_garbage_is_all_dropped_and_counted():
    import random

    rng = random.Random(7)
    garbage = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
               for _ in range(300)]
    # Valid protobuf that is wrong in every other way, too.
    garbage += [pb.CheckerSnapshot(checker_id="use1-a", region="us-east", registry_version="v1",
                                   check_count=rng.randrange(0, 10),
                                   states=rng.randbytes(rng.randrange(0, 4))).SerializeToString()
                for _ in range(100)]
    async with run_aggregator(REG, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        summary = await report(agg.port, garbage + [snap("use1-a", "us-east", REG, GOOD)])
        counted = sum(agg.state.counters.dropped.values())
        assert summary.accepted + summary.dropped == len(garbage) + 1
        assert counted == summary.dropped
        assert agg.state.counters.accepted == summary.accepted >= 1
        agg.on_tick()


async def test_a_new_registry_ends_streams_with_the_accepted_versions():
    old = make_registry(("a", "b"), version="old")
    new = make_registry(("b", "a", "c"), version="new")
    fleet = make_fleet()
    async with run_aggregator(old, fleet, clock=FakeClock(),
                              start_ticking=False) as agg:
        first = snap("use1-a", "us-east", old, [1, 2])

        async def after_adopt():
            yield first
            for _ in range(500):          # the server has taken the first one
                if agg.state.counters.accepted:
                    break
                await asyncio.sleep(0.002)
            agg.adopt(new, fleet)
            yield snap("use1-a", "us-east", old, [1, 1])   # taken, then the stream ends
            yield snap("use1-a", "us-east", old, [2, 2])   # never read

        async with grpc.aio.insecure_channel(f"127.0.0.1:{agg.port}") as ch:
            summary = await pb_grpc.IngestStub(ch).Report(after_adopt(), timeout=10)
        assert summary.accepted == 2
        assert list(summary.registry_versions) == ["new", "old"]
        row = agg.state.rows["use1-a"]
        assert codec.unpack(bytes(agg.state.slots.row(row)), 3).tolist() == [1, 1, 0]
