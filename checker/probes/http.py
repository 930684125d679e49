"""http and https probes: one request over a new connection, judged by its status.

Each probe opens a fresh connection (``Connection: close``; a reused
connection would hide exactly the failures a health check exists to see),
sends a request whose bytes were built once with the prober (``method``,
``path``, the check's extra ``headers``), and parses the response with
httptools (the parser behind uvicorn). The status must be one of
``expected_status`` (default 200-399). Without a ``search`` string the
verdict is taken as soon as the status line and headers are in; with one,
the first ``SEARCH_LIMIT`` bytes of the body must contain it. At most
``HEADER_LIMIT`` bytes are read before the headers end: a target that
sends endless headers fails at that bound instead of costing the checker
a parser run per chunk for the whole timeout.

Like Route 53, https does not verify certificates unless the check sets
``verify_tls``; the SNI and the Host header are the check's ``hostname``
(default: its host, and Host gets ``:port`` when the port is not the
scheme's default). Every https probe records its certificate's expiry.
"""

from __future__ import annotations

import asyncio
import ssl
from functools import lru_cache
from typing import cast
from urllib.parse import quote

import httptools
from healthplane.proto.config.model import Check

from . import stream
from .base import Outcome, Prober
from .certs import peer_not_after

SEARCH_LIMIT = 5120          # bytes of body searched, as Route 53 does
HEADER_LIMIT = 16384         # bytes read before the end of the headers
USER_AGENT = "healthplane-checker"
_HEADERS_TOO_LONG = f"headers over {HEADER_LIMIT} bytes"

# Characters left as they are in a request target; everything else (spaces,
# controls, non-ASCII) is percent-encoded so a path can never split the request.
_PATH_SAFE = "/?&=%:@!$'()*+,;~-._[]"


@lru_cache(maxsize=256)
def status_table(ranges: tuple[tuple[int, int], ...]) -> bytes:
    """One byte per status code 0..999: 1 where the code is healthy.

    Shared by every check with the same ranges (most have the default), so
    the table costs 1,000 bytes per distinct ``expected_status``, not per check.
    """
    table = bytearray(1000)
    for lo, hi in ranges:
        table[lo:hi + 1] = b"\x01" * (hi + 1 - lo)
    return bytes(table)


class _Response(stream.Exchange):
    """Sends the request, judges the status line, stops reading there."""

    __slots__ = ("prober", "parser", "seen", "in_body")

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float, prober: HttpProber) -> None:
        super().__init__(loop, t0)
        self.prober = prober
        self.parser: httptools.HttpResponseParser | None = None
        self.seen = 0            # bytes received
        self.in_body = False     # headers done, verdict waits for the body

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream = cast(asyncio.Transport, transport)  # see Exchange
        if self.prober.ssl_context is not None:
            self.cert = peer_not_after(stream)
        if self.fut.done():
            stream.abort()
            return
        self.parser = httptools.HttpResponseParser(self)
        stream.write(self.prober.request)

    def data_received(self, data: bytes) -> None:
        if self.fut.done():
            return
        self.seen += len(data)
        try:
            self.parser.feed_data(data)  # type: ignore[union-attr]
        except httptools.HttpParserUpgrade:
            self.finish(Outcome.FAILED, "bad response")
        except httptools.HttpParserError:
            if not self.fut.done():
                self.finish(Outcome.FAILED, "bad response")
        if self.seen > HEADER_LIMIT and not self.in_body and not self.fut.done():
            self.finish(Outcome.FAILED, _HEADERS_TOO_LONG)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()  # type: ignore[union-attr]
        if status < 1000 and self.prober.statuses[status]:
            self.headers_ok()
        else:
            self.finish(Outcome.FAILED, f"status {status}")

    def headers_ok(self) -> None:
        self.finish(Outcome.OK, "ok")

    def finish(self, outcome: Outcome, reason: str) -> None:
        super().finish(outcome, reason)
        # The parser holds a reference to us: break the cycle so each probe
        # is freed by reference counting, not by the cyclic GC.
        self.parser = None


class _SearchResponse(_Response):
    """Also requires the needle within the first SEARCH_LIMIT bytes of the body."""

    __slots__ = ("body", "needle")

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float, prober: HttpProber) -> None:
        super().__init__(loop, t0, prober)
        self.body = bytearray()
        self.needle: bytes = prober.needle or b""

    def headers_ok(self) -> None:
        self.in_body = True  # the verdict waits for the body

    def on_body(self, chunk: bytes) -> None:
        if self.fut.done():
            return
        body = self.body
        needle = self.needle
        # Only the new bytes (plus an overlap for a needle split across chunks)
        # need searching, so a body that trickles in costs linear time.
        start = max(0, len(body) - len(needle) + 1)
        body += chunk[:SEARCH_LIMIT - len(body)]
        if body.find(needle, start) >= 0:
            self.finish(Outcome.OK, "ok")
        elif len(body) >= SEARCH_LIMIT:
            self.finish(Outcome.FAILED, "search string missing")

    def on_message_complete(self) -> None:
        if not self.fut.done():
            self.finish(Outcome.FAILED, "search string missing")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.fut.done():
            return
        if exc is None and self.in_body:
            # A body delimited by the end of the connection ends here.
            self.finish(Outcome.FAILED, "search string missing")
        else:
            super().connection_lost(exc)


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def tls_context(verify: bool) -> ssl.SSLContext:
    """One shared client context per verification mode (loading CAs is costly)."""
    ctx = _CONTEXTS.get(verify)
    if ctx is None:
        ctx = ssl.create_default_context() if verify else _unverified_context()
        _CONTEXTS[verify] = ctx
    return ctx


def build_request(check: Check) -> bytes:
    """The exact bytes of the probe's request."""
    default_port = 443 if check.type == "https" else 80
    if check.hostname:
        host_header = check.hostname
    else:
        host = check.host or ""
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        host_header = host if check.port == default_port else f"{host}:{check.port}"
    if not host_header.isascii():
        try:
            host_header = host_header.encode("idna").decode("ascii")
        except UnicodeError:   # not a valid IDN: send what ASCII there is
            host_header = host_header.encode("ascii", "ignore").decode("ascii")
    host_header = "".join(ch for ch in host_header if ch.isprintable() and ch != " ")
    path = quote(check.path or "/", safe=_PATH_SAFE)
    if not path.startswith("/"):
        path = "/" + path
    # The loader refused names and values that could split the request; the
    # values may be any Latin-1 text, as HTTP/1.1 allows (obs-text).
    extra = "".join(f"{name}: {value}\r\n" for name, value in check.headers)
    return (f"{check.method} {path} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\n"
            f"{extra}"
            "Connection: close\r\n"
            "\r\n").encode("latin-1")


class HttpProber(stream.StreamProber):
    """Probes one http or https check. Build once per check, call once per slot."""

    __slots__ = ("request", "needle", "statuses")

    def __init__(self, check: Check, *, allow_private: bool) -> None:
        if check.host is None or check.port is None:
            raise ValueError(f"check {check.id!r}: an {check.type} check needs host and port")
        ssl_context = server_hostname = None
        if check.type == "https":
            ssl_context = tls_context(check.verify_tls)
            # Python sends no SNI for an IP address; the name still matters
            # for verification against the certificate's IP entries.
            server_hostname = (check.hostname or check.host).strip("[]")
        super().__init__(check.host, check.port, check.timeout, allow_private=allow_private,
                         ssl_context=ssl_context, server_hostname=server_hostname,
                         family=check.ip_family)
        self.request = build_request(check)
        self.needle = check.search.encode("utf-8") if check.search else None
        self.statuses = status_table(check.expected_status)

    def exchange(self, loop: asyncio.AbstractEventLoop) -> stream.Exchange:
        if self.needle is None:
            return _Response(loop, loop.time(), self)
        return _SearchResponse(loop, loop.time(), self)


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """A prober for a ``type: http`` or ``type: https`` check."""
    return HttpProber(check, allow_private=allow_private)
