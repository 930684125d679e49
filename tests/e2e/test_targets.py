"""The probe targets the demo and the end-to-end tests kill and revive."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from healthplane.deploy.launcher import free_port, free_ports
from healthplane.deploy.targets import Targets, read_targets


@pytest.fixture
async def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    ports = dict(zip(("a", "b", "tcp", "grpc", "hang"), free_ports(5), strict=True))
    (tmp_path / "checks.yaml").write_text(
        "checks:\n"
        f"  - {{id: a1, type: http, host: 127.0.0.1, port: {ports['a']}, path: /one}}\n"
        f"  - {{id: a2, type: http, host: 127.0.0.1, port: {ports['a']}, path: /two}}\n"
        f"  - {{id: b, type: http, host: 127.0.0.1, port: {ports['b']}, path: /health}}\n"
        f"  - {{id: db, type: tcp, host: 127.0.0.1, port: {ports['tcp']}}}\n"
        f"  - {{id: rpc, type: grpc, host: 127.0.0.1, port: {ports['grpc']}}}\n"
        f"  - {{id: slow, type: http, host: 127.0.0.1, port: {ports['hang']}}}\n"
        "  - {id: remote, type: http, host: 192.0.2.1, port: 80}\n"
        "  - {id: calc, type: calculated, children: [a1]}\n")
    targets = Targets(read_targets(tmp_path / "checks.yaml", hang={"slow"}, skip=set()))
    await targets.start()
    try:
        yield targets, ports
    finally:
        await targets.stop()


async def _http(port: int, path: str) -> int | str:
    try:
        async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=0.5)) as r:
            return r.status
    except aiohttp.ClientConnectorError:
        return "refused"
    except TimeoutError:
        return "timeout"


async def _tcp(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    return True


async def _grpc(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=2)
        return int(reply.status)


async def test_only_loopback_probe_checks_are_served(served) -> None:  # type: ignore[no-untyped-def]
    targets, _ = served
    assert set(targets.by_id) == {"a1", "a2", "b", "db", "rpc", "slow"}
    assert targets.by_id["slow"].kind == "hang"


async def test_each_kind_answers_while_up_and_fails_while_down(served) -> None:  # type: ignore[no-untyped-def]
    targets, ports = served
    assert await _http(ports["a"], "/one") == 200
    assert await _http(ports["a"], "/nope") == 404
    assert await _tcp(ports["tcp"])
    assert await _grpc(ports["grpc"]) == health_pb2.HealthCheckResponse.SERVING
    assert await _http(ports["hang"], "/") == "timeout"

    await targets.set_up("a1", False)
    assert await _http(ports["a"], "/one") == 503          # its port-mate keeps the port open
    assert await _http(ports["a"], "/two") == 200
    await targets.set_up("a2", False)
    assert await _http(ports["a"], "/two") == "refused"    # the whole port is down now
    await targets.set_up("b", False)
    assert await _http(ports["b"], "/health") == "refused"
    await targets.set_up("db", False)
    assert not await _tcp(ports["tcp"])
    await targets.set_up("rpc", False)
    assert await _grpc(ports["grpc"]) == health_pb2.HealthCheckResponse.NOT_SERVING

    for tid in ("a1", "a2", "b", "db", "rpc"):
        await targets.set_up(tid, True)
    assert await _http(ports["a"], "/one") == 200
    assert await _http(ports["b"], "/health") == 200
    assert await _tcp(ports["tcp"])
    assert await _grpc(ports["grpc"]) == health_pb2.HealthCheckResponse.SERVING


async def test_flapping_follows_its_schedule(served) -> None:  # type: ignore[no-untyped-def]
    targets, ports = served
    loop = asyncio.get_running_loop()
    start = loop.time()
    targets.flap("b", down_s=0.6, period=1.2, offset=0.3)
    # Look in the middle of each phase, timed from the start rather than from
    # the previous look: 0.3 s of margin either side for a loaded machine.
    await asyncio.sleep(start + 0.6 - loop.time())      # down from 0.3 to 0.9 s
    assert not targets.by_id["b"].up
    assert await _http(ports["b"], "/health") == "refused"
    await asyncio.sleep(start + 1.2 - loop.time())      # up from 0.9 to 1.5 s
    assert targets.by_id["b"].up
    assert await _http(ports["b"], "/health") == 200


async def test_control_api_pins_targets(served) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    targets, ports = served
    runner = web.AppRunner(targets.control_app())
    await runner.setup()
    control = free_port(exclude=set(ports.values()))
    site = web.TCPSite(runner, "127.0.0.1", control)
    await site.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{control}/down/b") as r:
                assert r.status == 200 and await r.json() == {"b": False}
            async with s.post(f"http://127.0.0.1:{control}/down/nope") as r:
                assert r.status == 404
            async with s.get(f"http://127.0.0.1:{control}/state") as r:
                state = await r.json()
            assert state["b"]["up"] is False and state["b"]["pinned"] is True
            assert await _http(ports["b"], "/health") == "refused"
            async with s.post(f"http://127.0.0.1:{control}/up/*") as r:
                assert all((await r.json()).values())
        assert await _http(ports["b"], "/health") == 200
    finally:
        await runner.cleanup()
