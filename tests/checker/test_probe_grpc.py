"""grpc probes against a real grpc.aio server with the standard health servicer."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from healthplane.checker.probes import make_prober
from healthplane.proto.config.model import Check

from tests.checker.helpers import closed_port

pytestmark = pytest.mark.timeout(30)


def grpc_check(port: int, **kw) -> Check:
    fields = dict(id="rpc", type="grpc", host="127.0.0.1", port=port, timeout=2.0, interval=10.0)
    fields.update(kw)
    return Check(**fields)


@pytest.fixture
async def health_server():
    server = grpc.aio.server()
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("api", health_pb2.HealthCheckResponse.SERVING)
    await servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
    yield port
    await server.stop(None)


async def probe(check: Check, *, allow_private: bool = True):
    return await make_prober(check, allow_private=allow_private)()


@pytest.mark.parametrize("service,ok,reason", [
    ("", True, "ok"),
    ("api", True, "ok"),
    ("down", False, "not serving"),
    ("nope", False, "service unknown"),
])
async def test_health_status_decides(health_server: int, service: str, ok: bool,
                                     reason: str) -> None:
    result = await probe(grpc_check(health_server, grpc_service=service))
    assert (result.ok, result.reason) == (ok, reason)


async def test_no_server_fails_fast() -> None:
    result = await probe(grpc_check(closed_port(), timeout=3.0))
    assert not result.ok
    assert result.reason in ("refused", "unavailable")
    assert result.latency < 1.5     # fails on the refused connect, not at the deadline


async def test_server_that_never_answers_times_out() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)
    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await probe(grpc_check(port, timeout=0.5))
    finally:
        server.close()
    assert (result.ok, result.reason) == (False, "timeout")
    assert result.latency < 2.0


async def test_slow_health_handler_times_out() -> None:
    class Slow(health_pb2_grpc.HealthServicer):
        async def Check(self, request, context):
            await asyncio.sleep(5)
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Slow(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await probe(grpc_check(port, timeout=0.4))
    finally:
        await server.stop(None)
    assert (result.ok, result.reason) == (False, "timeout")


async def test_each_probe_is_one_call_on_a_new_connection() -> None:
    calls: list[str] = []

    class Counting(health_pb2_grpc.HealthServicer):
        async def Check(self, request, context):
            calls.append(context.peer())
            await context.abort(grpc.StatusCode.UNAVAILABLE, "busy")

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Counting(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        prober = make_prober(grpc_check(port), allow_private=True)
        for _ in range(3):
            result = await prober()
            assert not result.ok
    finally:
        await server.stop(None)
    assert len(calls) == 3                  # no retry of the UNAVAILABLE answer
    assert len(set(calls)) == 3             # a new connection (client port) each time


async def test_private_target_refused_unless_allowed(health_server: int) -> None:
    result = await probe(grpc_check(health_server), allow_private=False)
    assert (result.ok, result.reason) == (False, "forbidden address (loopback)")


def test_on_uvloop() -> None:
    import uvloop

    async def scenario() -> list[str]:
        server = grpc.aio.server()
        servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            up = await probe(grpc_check(port))
            unknown = await probe(grpc_check(port, grpc_service="nope"))
        finally:
            await server.stop(None)
        down = await probe(grpc_check(closed_port()))
        return [up.reason, unknown.reason, down.reason]

    reasons = uvloop.run(scenario())
    assert reasons[:2] == ["ok", "service unknown"]
    assert reasons[2] in ("refused", "unavailable")
