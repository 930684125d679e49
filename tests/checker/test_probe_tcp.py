"""tcp probes against real loopback listeners."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop
from healthplane.checker.probes import make_prober
from healthplane.proto.config.model import Check

from tests.checker.helpers import closed_port

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("probe_path")]


def tcp_check(port: int, **kw) -> Check:
    fields = dict(id="db", type="tcp", host="127.0.0.1", port=port, timeout=1.0, interval=10.0)
    fields.update(kw)
    return Check(**fields)


class Listener:
    """Accepts connections, counts them, sends nothing."""

    def __init__(self) -> None:
        self.connections = 0
        self.endings: list[str] = []

    async def __aenter__(self) -> Listener:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await reader.read()
                self.endings.append("eof")
            except ConnectionResetError:
                self.endings.append("reset")
            writer.close()
        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def test_open_port_is_healthy_and_gets_one_connection_per_probe() -> None:
    async with Listener() as srv:
        prober = make_prober(tcp_check(srv.port), allow_private=True)
        for expected in (1, 2, 3):
            result = await prober()
            assert (result.ok, result.reason) == (True, "ok")
            for _ in range(100):
                if srv.connections == expected:
                    break
                await asyncio.sleep(0.01)
            assert srv.connections == expected


async def test_connection_is_dropped_with_a_reset() -> None:
    # A reset leaves no TIME_WAIT socket on the checker, however high the rate.
    async with Listener() as srv:
        assert (await make_prober(tcp_check(srv.port), allow_private=True)()).ok
        for _ in range(100):
            if srv.endings:
                break
            await asyncio.sleep(0.01)
    assert srv.endings == ["reset"]


async def test_closed_port_is_refused_once() -> None:
    result = await make_prober(tcp_check(closed_port()), allow_private=True)()
    assert (result.ok, result.reason) == (False, "refused")
    assert result.latency < 1.0


async def test_connect_that_never_completes_times_out() -> None:
    # A listener whose accept queue is full drops further SYNs: the connect
    # hangs the way it does against a black-holed address.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        await asyncio.sleep(0.05)
        result = await make_prober(tcp_check(port, timeout=0.3), allow_private=True)()
    finally:
        for f in fillers:
            f.close()
        sock.close()
    assert (result.ok, result.reason) == (False, "timeout")
    assert 0.25 <= result.latency < 1.5


@pytest.mark.parametrize("host,why", [("127.0.0.1", "loopback"), ("localhost", "loopback"),
                                      ("192.168.1.1", "private"), ("fe80::1", "link-local")])
async def test_private_targets_refused_unless_allowed(host: str, why: str) -> None:
    result = await make_prober(tcp_check(1, host=host), allow_private=False)()
    assert (result.ok, result.reason) == (False, f"forbidden address ({why})")


def test_on_uvloop() -> None:
    async def scenario() -> list[str]:
        async with Listener() as srv:
            up = await make_prober(tcp_check(srv.port), allow_private=True)()
        down = await make_prober(tcp_check(closed_port()), allow_private=True)()
        return [up.reason, down.reason]

    assert uvloop.run(scenario()) == ["ok", "refused"]


async def test_names_resolve_once_per_ttl_and_lookups_are_shared() -> None:
    from healthplane.checker.probes.address import POSITIVE_TTL, Resolver

    now = [0.0]
    resolver = Resolver(clock=lambda: now[0])
    calls: list[str] = []
    real_lookup = resolver._lookup

    async def counting(loop, host, allow_private):
        calls.append(host)
        return await real_lookup(loop, host, allow_private)

    resolver._lookup = counting  # type: ignore[method-assign]
    first = await resolver.resolve("localhost", allow_private=True)
    for _ in range(5):
        assert await resolver.resolve("localhost", allow_private=True) == first
    assert first.ip in ("127.0.0.1", "::1") and len(calls) == 1
    # The policy verdict is cached per (name, allow_private), never shared across them.
    denied = await resolver.resolve("localhost", allow_private=False)
    assert denied.reason == "forbidden address (loopback)" and len(calls) == 2
    now[0] += POSITIVE_TTL + 1
    await asyncio.gather(*(resolver.resolve("localhost", allow_private=True) for _ in range(10)))
    assert len(calls) == 3
