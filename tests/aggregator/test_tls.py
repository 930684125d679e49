"""Mutual TLS on a real in-process aggregator: identity, order, caps, rotation, defaults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from healthplane.aggregator.limits import Limits
from healthplane.aggregator.server import InsecureListen, run_aggregator
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.certs import issue, new_ca, write_fleet_certs, write_pair
from healthplane.runtime.clock import FakeClock
from healthplane.runtime.tls import TlsError, TlsFiles, secure_channel
from tests.aggregator.conftest import make_fleet, make_registry, snap

REG = make_registry()
FLEET = make_fleet()
GOOD = [1, 2, 1, 0, 1]
CHECKERS = ("use1-a", "use1-b", "euw1-a")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    write_fleet_certs(tmp_path, CHECKERS, ["127.0.0.1:7000"])
    return tmp_path


def files(d: Path, name: str) -> TlsFiles:
    return TlsFiles(str(d / f"{name}.pem"), str(d / f"{name}-key.pem"), str(d / "ca.pem"))


async def send(port: int, tls: TlsFiles, messages: list[pb.CheckerSnapshot]
               ) -> pb.ReportSummary:
    async with secure_channel(f"127.0.0.1:{port}", tls) as ch:
        return await pb_grpc.IngestStub(ch).Report(_aiter(messages), timeout=10)


async def _until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _aiter(items):
    for m in items:
        yield m


async def test_snapshot_counts_only_for_an_id_of_the_streams_certificate(certs: Path):
    async with run_aggregator(REG, FLEET, clock=FakeClock(), start_ticking=False,
                              tls=files(certs, "aggregator")) as agg:
        mine = snap("use1-a", "us-east", REG, GOOD)
        theirs = snap("euw1-a", "eu-west", REG, [2] * 5)
        summary = await send(agg.port, files(certs, "checker-use1-a"),
                             [mine, theirs, snap("use1-a", "us-east", REG, GOOD)])
        assert (summary.accepted, summary.dropped) == (2, 1)
        assert dict(agg.state.counters.dropped) == {"identity_mismatch": 1}
        assert agg.state.received[agg.state.rows["euw1-a"]] == float("-inf")
        # euw1-a itself, on its own stream, is unaffected.
        ok = await send(agg.port, files(certs, "checker-euw1-a"), [theirs])
        assert ok.accepted == 1


async def test_no_older_snapshot_replaces_a_newer_one(certs: Path):
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock, start_ticking=False,
                              tls=files(certs, "aggregator")) as agg:
        tls = files(certs, "checker-use1-a")
        row = agg.state.rows["use1-a"]

        def s(inc, seq, states):
            return snap("use1-a", "us-east", REG, states, seq=seq, incarnation=inc)

        r = await send(agg.port, tls, [s(5, 100, [1] * 5), s(5, 50, [2] * 5)])
        assert (r.accepted, r.dropped) == (1, 1)
        # On another stream (a reconnect) a replay of a lower sequence is dropped too.
        r = await send(agg.port, tls, [s(5, 7, [2] * 5), s(5, 100, [2] * 5)])
        assert (r.accepted, r.dropped) == (0, 2)
        assert agg.state.counters.dropped["stale_sequence"] == 3
        assert bytes(agg.state.slots.row(row)) == \
            snap("x", "", REG, [1] * 5).states
        # A restarted checker (larger incarnation) counts from its first snapshot...
        r = await send(agg.port, tls, [s(6, 1, [2] * 5)])
        assert r.accepted == 1
        # ...and the old run can no longer speak.
        r = await send(agg.port, tls, [s(5, 10**9, [1] * 5)])
        assert r.dropped == 1


async def test_checker_without_incarnation_restarts_only_after_going_stale(certs: Path):
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock, start_ticking=False,
                              tls=files(certs, "aggregator")) as agg:
        tls = files(certs, "checker-use1-a")

        def s(seq):
            return snap("use1-a", "us-east", REG, GOOD, seq=seq, incarnation=0)

        assert (await send(agg.port, tls, [s(100), s(3)])).dropped == 1
        await clock.advance(FLEET.stale_after + 0.1)
        assert (await send(agg.port, tls, [s(1), s(2)])).accepted == 2


async def test_report_streams_past_the_per_client_cap_are_refused(certs: Path):
    limits = Limits(max_streams_per_peer=2, max_watchers_per_peer=1)
    async with run_aggregator(REG, FLEET, clock=FakeClock(), start_ticking=False,
                              tls=files(certs, "aggregator"), limits=limits) as agg:
        rogue = files(certs, "checker-use1-b")
        async with secure_channel(f"127.0.0.1:{agg.port}", rogue) as ch:
            stub = pb_grpc.IngestStub(ch)
            calls = []
            for n in range(2):   # one at a time: the server admits in arrival order
                calls.append(stub.Report())
                await calls[-1].write(snap("use1-b", "us-east", REG, GOOD))
                await _until(lambda n=n: agg.report_admission.open == n + 1)
            third = stub.Report()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await third.write(snap("use1-b", "us-east", REG, GOOD))
                await third.done_writing()
                await third
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert agg.report_admission.refused["per_client"] == 1
            # Another checker is unaffected by use1-b's streams.
            ok = await send(agg.port, files(certs, "checker-use1-a"),
                            [snap("use1-a", "us-east", REG, GOOD)])
            assert ok.accepted == 1
            # Watchers: one per client here; a second is refused, another client's is not.
            agg.on_tick()
            w1 = pb_grpc.HealthStub(ch).Watch(pb.WatchRequest())
            assert (await w1.read()).sequence == agg.state.sequence
            w2 = pb_grpc.HealthStub(ch).Watch(pb.WatchRequest())
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await w2.read()
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            async with secure_channel(f"127.0.0.1:{agg.port}", files(certs, "dns")) as dch:
                w3 = pb_grpc.HealthStub(dch).Watch(pb.WatchRequest())
                assert (await w3.read()).sequence == agg.state.sequence
                w3.cancel()
            for c in (*calls[:2], w1):
                c.cancel()


async def test_rotation_new_connections_use_new_files_and_a_bad_file_keeps_the_old(
        tmp_path: Path):
    old, new = tmp_path / "old", tmp_path / "new"
    write_fleet_certs(old, CHECKERS, ["127.0.0.1:7000"])
    write_fleet_certs(new, CHECKERS, ["127.0.0.1:7000"])   # a whole new CA
    live = tmp_path / "live"
    live.mkdir()
    for name in ("aggregator.pem", "aggregator-key.pem", "ca.pem"):
        (live / name).write_bytes((old / name).read_bytes())
    server_tls = files(live, "aggregator")
    async with run_aggregator(REG, FLEET, clock=FakeClock(), start_ticking=False,
                              tls=server_tls) as agg:
        m = [snap("use1-a", "us-east", REG, GOOD)]
        assert (await send(agg.port, files(old, "checker-use1-a"), m)).accepted == 1
        for name in ("aggregator.pem", "aggregator-key.pem", "ca.pem"):
            (live / name).write_bytes((new / name).read_bytes())
        assert server_tls.reload()
        m = [snap("use1-a", "us-east", REG, GOOD)]
        assert (await send(agg.port, files(new, "checker-use1-a"), m)).accepted == 1
        with pytest.raises(grpc.aio.AioRpcError):
            await send(agg.port, files(old, "checker-use1-a"), m)
        # A broken certificate file: the running set stays, counted.
        (live / "aggregator.pem").write_text("not a certificate\n")
        assert not server_tls.reload()
        assert server_tls.reloads["failed"] == 1
        m = [snap("use1-a", "us-east", REG, GOOD)]
        assert (await send(agg.port, files(new, "checker-use1-a"), m)).accepted == 1


async def test_plaintext_off_loopback_needs_insecure():
    with pytest.raises(InsecureListen, match="--insecure"):
        async with run_aggregator(REG, FLEET, "0.0.0.0:0", start_ticking=False):
            pass
    async with run_aggregator(REG, FLEET, "0.0.0.0:0", start_ticking=False,
                              insecure=True) as agg:
        assert agg.port > 0


async def test_client_verifies_the_servers_name(tmp_path: Path):
    ca = new_ca()
    write_pair(tmp_path, "ca", ca)
    # A server certificate for some other host only.
    write_pair(tmp_path, "aggregator", issue(ca, "other", ["other.example"], server=True))
    write_pair(tmp_path, "checker-use1-a", issue(ca, "use1-a", ["use1-a"]))
    async with run_aggregator(REG, FLEET, start_ticking=False,
                              tls=files(tmp_path, "aggregator")) as agg:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await send(agg.port, files(tmp_path, "checker-use1-a"),
                       [snap("use1-a", "us-east", REG, GOOD)])
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert agg.state.counters.accepted == 0


def test_bad_tls_files_are_one_line_errors(certs: Path, tmp_path: Path):
    with pytest.raises(TlsError, match="key does not match"):
        TlsFiles(str(certs / "checker-use1-a.pem"), str(certs / "dns-key.pem"),
                 str(certs / "ca.pem"))
    other = tmp_path / "other"
    write_fleet_certs(other, CHECKERS, [])
    with pytest.raises(TlsError, match="not signed by a CA"):
        TlsFiles(str(certs / "dns.pem"), str(certs / "dns-key.pem"), str(other / "ca.pem"))
    with pytest.raises(TlsError, match="cannot read"):
        TlsFiles(str(tmp_path / "missing.pem"), str(certs / "dns-key.pem"),
                 str(certs / "ca.pem"))


async def test_idle_sockets_are_capped_and_closed_at_the_handshake_timeout():
    import os
    import socket

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    limits = Limits(max_connections=5, handshake_timeout=1.0)
    async with run_aggregator(REG, FLEET, start_ticking=False,
                              limits=limits) as agg:
        base = fds()
        socks = [socket.create_connection(("127.0.0.1", agg.port)) for _ in range(8)]
        try:
            await asyncio.sleep(0.3)
            # Past the cap, a connection is closed at once (its fd never stays).
            assert fds() - base <= 8 + 5
            await _until(lambda: fds() - base <= 8, timeout=5.0)   # handshake timeout
        finally:
            for s in socks:
                s.close()
