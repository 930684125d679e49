"""Snapshots reach a real grpc.aio Ingest server: cadence, layout, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import numpy as np
from healthplane.checker.metrics import CheckerMetrics
from healthplane.checker.runner import Checker
from healthplane.proto import codec
from healthplane.proto.config.model import Check

from healthplane.runtime.clock import FakeClock, SystemClock
from tests.checker.helpers import Recorder, make_fleet, make_registry, tcp_checks
from tests.checker.ingest_server import start_ingest


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port held for the block: refused until an Ingest server starts on it.

    Bound with SO_REUSEPORT, as gRPC binds its listeners, but never listening:
    servers can start and stop on it while nothing else on the machine (another
    process, or an outgoing connection's source port) can take it in between.
    """
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


async def test_snapshots_arrive_at_interval_with_exact_layout():
    server, ingest, port = await start_ingest()
    # Reports run on virtual time, which moves on only once the previous
    # report has arrived: each one is sent on its slot, none is replaced by
    # a newer one, however slow the machine. The gRPC stream is real.
    clock = FakeClock()
    checks = tcp_checks(9, interval=1.0, timeout=0.5, threshold=1)
    checks.append(Check(id="calc", type="calculated", children=("c0",)))
    registry = make_registry(checks)
    fleet = make_fleet({"r1": ("a",)}, aggregators=(f"127.0.0.1:{port}",),
                       report_interval=0.2)
    ok = {f"c{i}": i % 3 != 1 for i in range(9)}
    checker = Checker(registry, fleet, "a", clock=clock, make_prober=Recorder(clock, ok=ok),
                      metrics=CheckerMetrics())
    task = asyncio.create_task(checker.run())
    try:
        for n in range(1, 16):
            for _ in range(100):            # bounded: the next report is 0.2 s away
                if checker.sequence >= n:
                    break
                await clock.advance(0.01)
            assert checker.sequence == n
            await ingest.wait_for(n, timeout=10)
    finally:
        checker.stop()
        await clock.advance(0.1)
        await task
        await server.stop(None)
    snaps = [s for _, s in ingest.received]
    assert ingest.streams == 1                         # one long-lived stream
    assert [s.sequence for s in snaps] == list(range(1, 16))
    # Sent on the report grid, exactly 200 ms apart: the fake clock wakes
    # the report loop at its slot's time, never a step after it.
    gaps = np.diff([s.sent_unix_ms for s in snaps])
    assert np.all(gaps == 200), gaps
    for s in snaps:
        assert s.checker_id == "a" and s.region == "r1"
        assert s.registry_version == registry.version and s.check_count == 10
        assert len(s.states) == 3                      # ceil(2 * 10 / 8), every time
        assert s.sent_unix_ms > 1_600_000_000_000
    # After 1.2 s+ every check has been probed: exact bits.
    last = codec.decode(snaps[-1].states, 10)
    want = [codec.HEALTHY if ok[f"c{i}"] else codec.UNHEALTHY for i in range(9)] + [0]
    assert last.tolist() == want
    b0 = (want[0] << 6) | (want[1] << 4) | (want[2] << 2) | want[3]
    assert snaps[-1].states[0] == b0
    assert snaps[-1].states[2] & 0x0F == 0            # padding and the calculated check


async def test_aggregator_down_then_back_gets_snapshots_again():
    with reserved_port() as port:
        await _down_then_back(port)


async def _down_then_back(port: int) -> None:
    clock = SystemClock()
    registry = make_registry(tcp_checks(4, interval=1.0, timeout=0.5))
    live_server, live, live_port = await start_ingest()
    fleet = make_fleet({"r1": ("a",)}, report_interval=0.1,
                       aggregators=(f"127.0.0.1:{port}", f"127.0.0.1:{live_port}"))
    metrics = CheckerMetrics()
    checker = Checker(registry, fleet, "a", clock=clock, make_prober=Recorder(clock),
                      metrics=metrics, stream_backoff=(0.05, 0.3))
    task = asyncio.create_task(checker.run())
    server = None
    try:
        # The first aggregator is down; the other is not held back by it.
        await live.wait_for(5, timeout=10)
        down_stream = checker.streams[f"127.0.0.1:{port}"]
        assert down_stream.sent == 0
        server, ingest, _ = await start_ingest(port)
        await ingest.wait_for(5, timeout=10)
        seqs = [s.sequence for _, s in ingest.received]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # The newest snapshot replaced unsent ones: no backlog burst.
        assert seqs[0] >= 5
        reconnects = metrics.stream_reconnects.labels(f"127.0.0.1:{port}")._value.get()
        assert reconnects >= 1
        # Kill it again (for a few reports' time) and bring it back once more.
        await server.stop(None)
        await live.wait_for(len(live.received) + 3, timeout=10)
        server, ingest2, _ = await start_ingest(port)
        await ingest2.wait_for(3, timeout=10)
    finally:
        checker.stop()
        await task
        if server is not None:
            await server.stop(None)
        await live_server.stop(None)


async def test_slot_keeps_only_the_newest_unsent_snapshot():
    from healthplane.checker.streams import AggregatorStream
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

    metrics = CheckerMetrics()
    stream = AggregatorStream("127.0.0.1:1", clock=SystemClock(), metrics=metrics)
    for seq in range(1, 6):
        stream.offer(pb.CheckerSnapshot(sequence=seq))
    assert (await stream._take()).sequence == 5
    assert metrics.snapshots_replaced.labels("127.0.0.1:1")._value.get() == 4
    stream.close()
    assert await stream._take() is None


class OneVersionIngest:
    """An aggregator that knows one registry version and says so, as a real one does."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.received: list = []
        self.streams = 0

    async def Report(self, request_iterator, context):  # noqa: N802 (gRPC name)
        from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
        self.streams += 1
        async for snap in request_iterator:
            self.received.append(snap)
            if snap.registry_version != self.version:
                break
        return pb.ReportSummary(registry_versions=[self.version])


async def test_checker_reports_in_the_version_its_aggregator_knows():
    import grpc
    from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc
    old = make_registry(tcp_checks(3, interval=1.0, timeout=0.5, threshold=1))
    moved = tcp_checks(4, interval=1.0, timeout=0.5, threshold=1)
    new = make_registry([moved[3], *moved[:3]])       # a new check first: every index moves
    servicer = OneVersionIngest(old.version)
    server = grpc.aio.server()
    pb_grpc.add_IngestServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fleet = make_fleet({"r1": ("a",)}, aggregators=(f"127.0.0.1:{port}",), report_interval=0.05)
    ok = {"c0": True, "c1": False, "c2": True, "c3": False}
    checker = Checker(old, fleet, "a", make_prober=Recorder(SystemClock(), ok=ok),
                      metrics=CheckerMetrics())
    task = asyncio.create_task(checker.run())
    try:
        for _ in range(200):
            if any(s.states and codec.unpack(s.states, 3).tolist() == [1, 2, 1]
                   for s in servicer.received):
                break
            await asyncio.sleep(0.02)
        checker.adopt(new, fleet)
        seen = len(servicer.received)
        for _ in range(200):
            if len(servicer.received) > seen + 10:
                break
            await asyncio.sleep(0.02)
        later = servicer.received[seen:]
        # At most the first report after the change is in the new version;
        # after that, everything comes remapped onto the version it knows.
        assert [s.registry_version for s in later[2:]] == [old.version] * len(later[2:])
        assert codec.unpack(later[-1].states, 3).tolist() == [1, 2, 1]
        assert checker.streams[f"127.0.0.1:{port}"].accepted == (old.version,)
    finally:
        checker.stop()
        await task
        await server.stop(None)


async def test_a_snapshot_left_over_from_a_stall_is_never_sent():
    from healthplane.checker.streams import AggregatorStream
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

    clock = FakeClock()
    stream = AggregatorStream("127.0.0.1:1", clock=clock, metrics=CheckerMetrics(),
                              max_age=1.0)
    stream.offer(pb.CheckerSnapshot(sequence=1))
    clock.jump(10.0)            # stopped before the stream took it
    taker = asyncio.create_task(stream._take())
    await clock.settle()
    assert not taker.done() and stream.expired == 1
    stream.offer(pb.CheckerSnapshot(sequence=2))
    assert (await taker).sequence == 2
