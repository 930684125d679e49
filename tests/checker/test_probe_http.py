"""http/https probes against real loopback servers started in the test."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop
from aiohttp import web
from healthplane.checker.probes import PROBES, make_prober
from healthplane.checker.probes.http import SEARCH_LIMIT, build_request
from healthplane.proto.config.model import PROBE_TYPES, Check

from tests.checker.helpers import closed_port, until

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("probe_path")]


def http_check(port: int, **kw) -> Check:
    fields = dict(id="web", type="http", host="127.0.0.1", port=port, timeout=2.0, interval=10.0)
    fields.update(kw)
    return Check(**fields)


async def probe(check: Check, *, allow_private: bool = True):
    return await make_prober(check, allow_private=allow_private)()


# -- servers ------------------------------------------------------------------

async def aiohttp_server(routes: dict[str, Callable]) -> tuple[web.AppRunner, int]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class RawServer:
    """An asyncio server running ``behaviour(reader, writer)`` per connection.

    Counts connections, so tests can assert one connection per probe.
    """

    def __init__(self, behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                           Awaitable[None]],
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        self.ssl_context = ssl_context
        self.connections = 0
        self.disconnected = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                 ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self._writers:
            w.transport.abort()
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            await self.behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self.disconnected.set()


async def read_request(reader: asyncio.StreamReader) -> dict[str, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {"_line": lines[0]}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers


def responder(raw: bytes, seen: list | None = None):
    async def behaviour(reader, writer):
        request = await read_request(reader)
        if seen is not None:
            seen.append(request)
        writer.write(raw)
        await writer.drain()
        writer.close()
    return behaviour


async def hang(reader, writer):
    await asyncio.sleep(3600)


async def reset_after_request(reader, writer):
    await read_request(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def close_after_request(reader, writer):
    await read_request(reader)
    writer.close()


# -- status and body ----------------------------------------------------------

@pytest.mark.parametrize("status,ok,reason", [
    (200, True, "ok"), (204, True, "ok"), (302, True, "ok"), (399, True, "ok"),
    (404, False, "status 404"), (500, False, "status 500"), (503, False, "status 503"),
])
async def test_status_decides(status: int, ok: bool, reason: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": "/elsewhere"})
    runner, port = await aiohttp_server({"/health": handler})
    try:
        result = await probe(http_check(port, path="/health"))
    finally:
        await runner.cleanup()
    assert (result.ok, result.reason) == (ok, reason)
    assert 0 <= result.latency < 2.0


async def test_path_host_header_and_request_shape() -> None:
    seen: list[dict[str, str]] = []
    async with RawServer(responder(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", seen)) as srv:
        assert (await probe(http_check(srv.port, path="/a b?x=1"))).ok
        assert (await probe(http_check(srv.port, hostname="api.example.test"))).ok
    assert seen[0]["_line"] == "GET /a%20b?x=1 HTTP/1.1"
    assert seen[0]["host"] == f"127.0.0.1:{srv.port}"
    assert seen[0]["connection"] == "close"
    assert seen[1]["host"] == "api.example.test"


def test_request_host_omits_default_port_and_brackets_ipv6() -> None:
    assert b"Host: 192.0.2.1\r\n" in build_request(http_check(80, host="192.0.2.1"))
    assert b"Host: [2001:db8::1]:8080\r\n" in build_request(http_check(8080, host="2001:db8::1"))
    https = Check(id="s", type="https", host="192.0.2.1", port=443)
    assert b"Host: 192.0.2.1\r\n" in build_request(https)


async def test_search_found_missing_and_beyond_limit() -> None:
    async def found(request):
        return web.Response(text="status: all good")

    async def missing(request):
        return web.Response(text="status: degraded")

    async def late(request):
        return web.Response(text="x" * SEARCH_LIMIT + "all good")

    async def at_edge(request):   # the needle's last byte is byte SEARCH_LIMIT
        return web.Response(text="x" * (SEARCH_LIMIT - 8) + "all good")

    runner, port = await aiohttp_server(
        {"/found": found, "/missing": missing, "/late": late, "/edge": at_edge})
    try:
        results = {p: await probe(http_check(port, path=f"/{p}", search="all good"))
                   for p in ("found", "missing", "late", "edge")}
    finally:
        await runner.cleanup()
    assert results["found"].ok and results["edge"].ok
    assert results["missing"].reason == "search string missing"
    assert results["late"].reason == "search string missing"


async def test_search_across_chunks_and_until_close() -> None:
    async def split(reader, writer):
        await read_request(reader)
        # No Content-Length: the body ends when the connection does.
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhealth: al")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"l good")
        await writer.drain()
        writer.close()

    async with RawServer(split) as srv:
        assert (await probe(http_check(srv.port, search="all good"))).ok
        missing = await probe(http_check(srv.port, search="absent"))
    assert missing.reason == "search string missing"


async def test_search_failure_status_wins() -> None:
    async with RawServer(responder(b"HTTP/1.1 503 No\r\nContent-Length: 2\r\n\r\nok")) as srv:
        result = await probe(http_check(srv.port, search="ok"))
    assert result.reason == "status 503"


# -- failures -----------------------------------------------------------------

async def test_timeout_when_server_never_answers() -> None:
    async with RawServer(hang) as srv:
        result = await probe(http_check(srv.port, timeout=0.3))
    assert (result.ok, result.reason) == (False, "timeout")
    assert 0.25 <= result.latency < 1.5


async def test_timeout_when_body_stalls_while_searching() -> None:
    async def stall(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 100)
        await writer.drain()
        await asyncio.sleep(3600)

    async with RawServer(stall) as srv:
        searching = await probe(http_check(srv.port, timeout=0.3, search="never"))
        # Without a search string the verdict comes with the headers.
        plain = await probe(http_check(srv.port, timeout=0.3))
    assert searching.reason == "timeout"
    assert plain.ok and plain.latency < 0.3


async def test_refused_on_a_closed_port() -> None:
    result = await probe(http_check(closed_port()))
    assert (result.ok, result.reason) == (False, "refused")
    assert result.latency < 1.0


@pytest.mark.parametrize("behaviour,reason", [
    (reset_after_request, "reset"),
    (close_after_request, "closed"),
    (responder(b"HELLO THERE\r\n\r\n"), "bad response"),
])
async def test_broken_servers(behaviour, reason: str) -> None:
    async with RawServer(behaviour) as srv:
        result = await probe(http_check(srv.port))
    assert (result.ok, result.reason) == (False, reason)


@pytest.mark.parametrize("behaviour,timeout", [
    (responder(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"), 2.0),
    (reset_after_request, 2.0),
    (hang, 0.2),
])
async def test_no_retry_one_connection_per_probe(behaviour, timeout: float) -> None:
    async with RawServer(behaviour) as srv:
        prober = make_prober(http_check(srv.port, timeout=timeout), allow_private=True)
        for expected in (1, 2, 3):
            result = await prober()
            assert not result.ok
            # Wait for the server to log this probe's connection (a loaded
            # machine may accept it late); a retry would show as one more,
            # here or, accepted late, in the next round.
            await until(lambda n=expected: srv.connections >= n)
            await asyncio.sleep(0.05)   # a retry, had there been one, would land here
            assert srv.connections == expected


async def test_cancelled_probe_closes_its_connection() -> None:
    async def wait_for_eof(reader, writer):
        await read_request(reader)
        await reader.read()     # returns at EOF, raises on reset: either way, it's closed

    async with RawServer(wait_for_eof) as srv:
        task = asyncio.ensure_future(probe(http_check(srv.port, timeout=5.0)))
        for _ in range(100):
            if srv.connections:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(srv.disconnected.wait(), 2.0)


# -- address policy -----------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "10.1.2.3",
                                  "169.254.169.254"])
async def test_private_targets_refused_unless_allowed(host: str) -> None:
    result = await probe(http_check(1, host=host), allow_private=False)
    assert not result.ok
    assert result.reason.startswith("forbidden address (")


async def test_name_resolving_to_loopback_is_probed_when_allowed() -> None:
    async with RawServer(responder(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as srv:
        # localhost may resolve to ::1 first; the server listens on 127.0.0.1 only.
        result = await probe(http_check(srv.port, host="localhost"))
        forbidden = await probe(http_check(srv.port, host="localhost"), allow_private=False)
    assert result.ok or result.reason == "refused"
    assert forbidden.reason == "forbidden address (loopback)"


async def test_unresolvable_name_fails() -> None:
    result = await probe(http_check(80, host="no-such-host.invalid", timeout=2.0))
    assert not result.ok
    assert result.reason in ("resolve failed", "timeout")


# -- TLS ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=probe.test", "-addext", "subjectAltName=DNS:probe.test",
                    "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return key, crt


def tls_server_context(cert: tuple[Path, Path], sni_seen: list) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[1]), str(cert[0]))
    ctx.sni_callback = lambda sslobj, name, _ctx: sni_seen.append(name)
    return ctx


async def test_https_sends_sni_and_host_without_verifying(cert) -> None:
    sni: list[str | None] = []
    seen: list[dict[str, str]] = []
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy"
    async with RawServer(responder(reply, seen), tls_server_context(cert, sni)) as srv:
        named = await probe(http_check(srv.port, type="https", hostname="probe.test",
                                       search="healthy"))
        by_ip = await probe(http_check(srv.port, type="https"))
    assert named.ok and by_ip.ok
    assert sni == ["probe.test", None]          # no SNI for an IP address
    assert seen[0]["host"] == "probe.test"
    assert seen[1]["host"] == f"127.0.0.1:{srv.port}"


async def test_https_verify_rejects_self_signed(cert) -> None:
    async with RawServer(responder(b"HTTP/1.1 200 OK\r\n\r\n"),
                         tls_server_context(cert, [])) as srv:
        result = await probe(http_check(srv.port, type="https", hostname="probe.test",
                                        verify_tls=True))
    assert not result.ok
    assert result.reason.startswith("tls error: ")
    assert "certificate" in result.reason


async def test_https_against_plain_http_is_a_tls_error() -> None:
    async def plain(reader, writer):
        await reader.read(1)        # the ClientHello has arrived
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3600)

    async with RawServer(plain) as srv:
        result = await probe(http_check(srv.port, type="https", timeout=1.0))
    assert not result.ok
    assert result.reason.startswith("tls error: "), result.reason


async def test_tls_handshake_counts_against_the_timeout(cert) -> None:
    async with RawServer(hang) as srv:      # accepts TCP, never answers the ClientHello
        result = await probe(http_check(srv.port, type="https", timeout=0.3))
    assert result.reason == "timeout"
    assert result.latency < 1.5


# -- the same on uvloop ---------------------------------------------------------

def test_core_cases_on_uvloop() -> None:
    async def scenario() -> list[str]:
        reasons = []
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nall good"
        async with RawServer(responder(ok)) as srv:
            reasons.append((await probe(http_check(srv.port, search="good"))).reason)
            reasons.append((await probe(http_check(srv.port, search="bad"))).reason)
        async with RawServer(responder(b"HTTP/1.1 503 X\r\nContent-Length: 0\r\n\r\n")) as srv:
            reasons.append((await probe(http_check(srv.port))).reason)
        async with RawServer(hang) as srv:
            reasons.append((await probe(http_check(srv.port, timeout=0.2))).reason)
        async with RawServer(reset_after_request) as srv:
            reasons.append((await probe(http_check(srv.port))).reason)
        reasons.append((await probe(http_check(closed_port()))).reason)
        reasons.append((await probe(http_check(1), allow_private=False)).reason)
        return reasons

    assert uvloop.run(scenario()) == [
        "ok", "search string missing", "status 503", "timeout", "reset", "refused",
        "forbidden address (loopback)"]


def test_probes_table_covers_every_probed_type() -> None:
    assert set(PROBES) == set(PROBE_TYPES) == {"http", "https", "tcp", "grpc", "dns"}
    with pytest.raises(ValueError):
        make_prober(Check(id="calc", type="calculated", children=("a",)), allow_private=True)


@pytest.mark.parametrize("fields", [
    {},
    {"hostname": "api.example.com", "path": "/status?full=1"},
    {"hostname": "a-much-longer-virtual-host-name.internal.example.net",
     "headers": (("X-Probe", "1"), ("Authorization", "Bearer t"))},
    {"method": "HEAD", "hostname": "h.example"},
])
async def test_the_request_sent_is_the_one_built(fields: dict) -> None:
    """Byte for byte, on both paths: the engine keeps the Host value apart from
    the request it shares between checks and puts it back per probe."""
    seen: list[bytes] = []

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with RawServer(capture) as srv:
        check = http_check(srv.port, **fields)
        result = await probe(check)
        assert result.outcome.name == "OK", result
        assert seen == [build_request(check)]
