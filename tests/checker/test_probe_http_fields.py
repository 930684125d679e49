"""http/https fields (method, headers, expected_status), the header bound and
certificate expiry, against real loopback servers on both event loops."""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from pathlib import Path

import pytest
from healthplane.checker.probes import Outcome, make_prober
from healthplane.checker.probes.http import HEADER_LIMIT, build_request
from healthplane.proto.config.model import Check

from tests.checker.loops import LOOPS, run_on
from tests.checker.tlsutil import self_signed

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("probe_path")]


def http_check(port: int, **kw) -> Check:
    fields = dict(id="web", type="http", host="127.0.0.1", port=port, timeout=2.0, interval=10.0)
    fields.update(kw)
    return Check(**fields)


class Server:
    """Answers every request with `status`, recording each request's head and
    how many bytes it wrote; `flood` sends endless headers instead."""

    def __init__(self, status: int = 200, *, flood: bool = False,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.status = status
        self.flood = flood
        self.ssl_context = ssl_context
        self.requests: list[bytes] = []
        self.sent = 0

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                 ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            if self.flood:
                writer.write(b"HTTP/1.1 200 OK\r\n")
                line = b"X-Flood: " + b"a" * 1000 + b"\r\n"
                while True:   # until the probe hangs up
                    writer.write(line)
                    self.sent += len(line)
                    await writer.drain()
            body = b"ok"
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                         % (self.status, len(body), body))
            await writer.drain()
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_head_sends_head_and_is_judged_by_status(loop: str) -> None:
    async def scenario():
        async with Server(200) as srv:
            result = await make_prober(http_check(srv.port, method="HEAD"),
                                       allow_private=True)()
            return result, srv.requests
    result, requests = run_on(loop, scenario)
    assert (result.outcome, result.reason) == (Outcome.OK, "ok")
    assert len(requests) == 1 and requests[0].startswith(b"HEAD / HTTP/1.1\r\n")


@pytest.mark.parametrize("loop", LOOPS)
def test_extra_headers_are_sent_and_host_stays_the_hostname(loop: str) -> None:
    check = http_check(0, hostname="api.example.com",
                       headers=(("X-Probe", "1"), ("Authorization", "Bearer t0k")))

    async def scenario():
        async with Server(200) as srv:
            result = await make_prober(http_check(srv.port, hostname=check.hostname,
                                                  headers=check.headers), allow_private=True)()
            return result, srv.requests
    result, requests = run_on(loop, scenario)
    assert result.ok
    head = requests[0].decode()
    assert "\r\nX-Probe: 1\r\n" in head and "\r\nAuthorization: Bearer t0k\r\n" in head
    assert head.count("Host:") == 1 and "\r\nHost: api.example.com\r\n" in head
    assert head.endswith("Connection: close\r\n\r\n")


def test_request_bytes_are_the_same_with_default_fields() -> None:
    # Checks that use none of the new fields send exactly what they sent before.
    assert build_request(http_check(8080, path="/health")) == (
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: healthplane-checker\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("status,expected,outcome", [
    (200, ((200, 399),), Outcome.OK),
    (404, ((200, 399),), Outcome.FAILED),
    (503, ((503, 503),), Outcome.OK),
    (200, ((204, 204), (300, 399)), Outcome.FAILED),
    (302, ((204, 204), (300, 399)), Outcome.OK),
])
def test_expected_status_decides(loop: str, status: int, expected: tuple,
                                 outcome: Outcome) -> None:
    async def scenario():
        async with Server(status) as srv:
            return await make_prober(http_check(srv.port, expected_status=expected),
                                     allow_private=True)()
    result = run_on(loop, scenario)
    assert result.outcome == outcome
    assert result.reason == ("ok" if outcome is Outcome.OK else f"status {status}")


@pytest.mark.parametrize("loop", LOOPS)
def test_endless_headers_fail_at_the_bound(loop: str) -> None:
    async def scenario():
        async with Server(flood=True) as srv:
            started = time.monotonic()
            result = await make_prober(http_check(srv.port, timeout=5.0), allow_private=True)()
            return result, time.monotonic() - started
    result, took = run_on(loop, scenario)
    assert (result.outcome, result.reason) == (Outcome.FAILED,
                                               f"headers over {HEADER_LIMIT} bytes")
    assert took < 2.5    # at the bound, not at the 5 s deadline


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("verify", [False, True])
def test_https_records_certificate_expiry(loop: str, verify: bool, tmp_path: Path) -> None:
    cert = self_signed(tmp_path, days=3)
    check_kw = dict(type="https", verify_tls=verify, hostname="localhost")

    async def scenario():
        async with Server(200, ssl_context=cert.server_context()) as srv:
            prober = make_prober(http_check(srv.port, **check_kw), allow_private=True)
            if verify:
                # Trust the test's own certificate as the CA of this prober.
                prober.ssl_context = ssl.create_default_context(cafile=str(cert.cert_file))
            return await prober()
    result = run_on(loop, scenario)
    assert (result.outcome, result.reason) == (Outcome.OK, "ok")
    assert result.cert_not_after == cert.not_after


@pytest.mark.parametrize("loop", LOOPS)
def test_plain_http_has_no_certificate(loop: str) -> None:
    async def scenario():
        async with Server(200) as srv:
            return await make_prober(http_check(srv.port), allow_private=True)()
    assert math.isnan(run_on(loop, scenario).cert_not_after)
