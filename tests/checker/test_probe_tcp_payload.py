"""tcp send/expect against a Redis-style server and an SMTP-style banner, both loops."""

from __future__ import annotations

import asyncio

import pytest
from healthplane.checker.probes import Outcome, make_prober
from healthplane.checker.probes.tcp import EXPECT_LIMIT
from healthplane.proto.config.model import Check

from tests.checker.loops import LOOPS, run_on

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("probe_path")]


def tcp_check(port: int, **kw) -> Check:
    fields = dict(id="kv", type="tcp", host="127.0.0.1", port=port, timeout=1.5, interval=10.0)
    fields.update(kw)
    return Check(**fields)


class RedisLike:
    """Answers PING with +PONG (when `healthy`), anything else with -ERR; records
    every byte received. `banner` is sent on connect; `flood` sends noise forever."""

    def __init__(self, *, healthy: bool = True, banner: bytes = b"",
                 flood: bool = False) -> None:
        self.healthy = healthy
        self.banner = banner
        self.flood = flood
        self.received: list[bytes] = []
        self.connections = 0

    async def __aenter__(self) -> RedisLike:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.banner:
                writer.write(self.banner)
            if self.flood:
                while True:
                    writer.write(b"-LOADING please wait\r\n" * 64)
                    await writer.drain()
            while line := await reader.readline():
                self.received.append(line)
                if line == b"PING\r\n" and self.healthy:
                    writer.write(b"+PONG\r\n")
                else:
                    writer.write(b"-ERR unknown command\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def _probe(check: Check):
    return await make_prober(check, allow_private=True)()


@pytest.mark.parametrize("loop", LOOPS)
def test_ping_pong_is_healthy_and_sends_once(loop: str) -> None:
    async def scenario():
        async with RedisLike() as srv:
            result = await _probe(tcp_check(srv.port, send="PING\r\n", expect="+PONG"))
            await asyncio.sleep(0.05)
            return result, srv.received, srv.connections
    result, received, connections = run_on(loop, scenario)
    assert (result.outcome, result.reason) == (Outcome.OK, "ok")
    assert received == [b"PING\r\n"] and connections == 1


@pytest.mark.parametrize("loop", LOOPS)
def test_wrong_answer_fails_at_the_one_deadline(loop: str) -> None:
    async def scenario():
        async with RedisLike(healthy=False) as srv:
            result = await _probe(tcp_check(srv.port, send="PING\r\n", expect="+PONG",
                                            timeout=0.5))
            return result
    result = run_on(loop, scenario)
    # The server keeps the connection open: the verdict comes at the one deadline.
    assert (result.outcome, result.reason) == (Outcome.TIMEOUT, "timeout")


@pytest.mark.parametrize("loop", LOOPS)
def test_banner_expect_without_send(loop: str) -> None:
    async def scenario():
        async with RedisLike(banner=b"220 mail.example.test ESMTP ready\r\n") as srv:
            up = await _probe(tcp_check(srv.port, expect="220 "))
            wrong = await _probe(tcp_check(srv.port, expect="554 ", timeout=0.5))
            return up, wrong, srv.received
    up, wrong, received = run_on(loop, scenario)
    assert up.ok and received == []          # nothing sent without send
    assert (wrong.outcome, wrong.reason) == (Outcome.TIMEOUT, "timeout")


@pytest.mark.parametrize("loop", LOOPS)
def test_endless_noise_fails_at_the_expect_limit(loop: str) -> None:
    async def scenario():
        async with RedisLike(flood=True) as srv:
            return await _probe(tcp_check(srv.port, expect="+PONG", timeout=5.0))
    result = run_on(loop, scenario)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "expect string missing")
    assert result.latency < 2.5       # after EXPECT_LIMIT bytes, not at the deadline
    assert EXPECT_LIMIT == 5120


@pytest.mark.parametrize("loop", LOOPS)
def test_close_before_the_expect_string(loop: str) -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"-ERR max clients\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await _probe(tcp_check(port, send="PING\r\n", expect="+PONG"))
        finally:
            server.close()
    result = run_on(loop, scenario)
    assert result.outcome in (Outcome.FAILED, Outcome.RESET)
    assert result.reason in ("expect string missing", "reset")
