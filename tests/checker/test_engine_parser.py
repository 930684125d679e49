"""The compiled engine's response reader agrees with the Python probers, byte for byte.

The reference is the Python path itself: the real http/tcp exchange objects
(httptools underneath) fed the same reads, then the end of the stream.
Hypothesis builds responses from a grammar of good and broken parts (status
lines, framing headers, chunked bodies, upgrades, endless headers) plus raw
bytes, cuts them into reads at random points, and the two verdicts, outcome
and reason text, must be equal.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from healthplane.checker.probes import engine
from healthplane.checker.probes.http import HEADER_LIMIT, SEARCH_LIMIT, HttpProber
from healthplane.checker.probes.tcp import EXPECT_LIMIT, TcpProber
from healthplane.proto.config.model import Check
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

mod = engine.COMPILED
pytestmark = pytest.mark.skipif(mod is None, reason="the compiled probe engine is not built")
FUZZ = settings(max_examples=int(os.environ.get("HEALTHPLANE_FUZZ_EXAMPLES", "400")),
                deadline=None, suppress_health_check=[HealthCheck.too_slow])


def python_verdict(prober: HttpProber | TcpProber, reads: list[bytes], eof: bool):
    loop = asyncio.new_event_loop()
    try:
        ex = prober.exchange(loop)
        if isinstance(prober, HttpProber):
            ex.connection_made(_NoTransport())   # sends the request, makes the parser
        for data in reads:
            if ex.fut.done():
                break
            ex.data_received(data)
        if eof and not ex.fut.done():
            # asyncio's order at a clean end: eof_received, then connection_lost.
            ex.eof_received()
            if not ex.fut.done():
                ex.connection_lost(None)
        if not ex.fut.done():
            return None
        result = ex.fut.result()
        return int(result.outcome), result.reason
    finally:
        loop.close()


class _NoTransport:
    """Takes the request and the hang-up; the reference needs no socket."""

    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def compiled_verdict(prober: HttpProber | TcpProber, reads: list[bytes], eof: bool):
    assert mod is not None
    if isinstance(prober, HttpProber):
        got = mod.judge_http(reads, prober.statuses, prober.needle, eof)
    else:
        got = mod.judge_tcp(reads, prober.expect, eof)
    return None if got is None else (got[0], engine.reason_text(got[1]))


def http_prober(search: str | None, expected: tuple[tuple[int, int], ...]) -> HttpProber:
    return HttpProber(Check(id="f", type="http", host="127.0.0.1", port=80, timeout=1.0,
                            interval=10.0, search=search, expected_status=expected),
                      allow_private=True)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points + [len(data)]:
        if p > last:
            pieces.append(data[last:p])
            last = p
    return pieces


# -- the grammar ---------------------------------------------------------------

GOOD_STATUS = st.sampled_from([
    b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content", b"HTTP/1.1 200",
    b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 503 Unavailable", b"HTTP/1.1 301 Moved", b"HTTP/1.1 404 Not Found"])
ODD_STATUS = st.one_of(
    st.sampled_from([b"HTTP/1.1 200 ", b"HTTP/2.0 200 OK", b"HTTP/1.1 99 Odd", b"HTTP/1.1 2000 OK",
                     b"HTTP/1.1  200 OK", b"http/1.1 200 OK", b"HTTP/1.1 200 OK\n", b"ICY 200 OK",
                     b"HTTP/9.9 200 OK", b""]),
    st.builds(lambda code, reason: b"HTTP/1.1 %03d " % code + reason,
              st.integers(0, 999), st.binary(max_size=12)),
)
GOOD_HEADERS = st.sampled_from([
    b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: 12", b"Content-Length:  3 ",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip", b"Transfer-Encoding: gzip, chunked",
    b"Connection: close", b"Connection: upgrade", b"Upgrade: h2c", b"Server: test", b"X:\tv",
    b"X-Long: " + b"a" * 5000, b"Content-Type: text/plain; charset=utf-8"])
BAD_HEADERS = st.sampled_from([
    b"Content-Length: x", b"Content-Length: 99999999999999999999999", b"Content-Length: 1 2",
    b"X-Folded: a\r\n b", b"Bad Header: x", b"NoColon", b": empty", b"X: \x00"])
BODIES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"needle", b"hello needle world", b"0\r\n\r\n", b"6\r\nneedle\r\n0\r\n\r\n",
                     b"3\r\nnee\r\n3\r\ndle\r\n0\r\n\r\n", b"zz\r\n",
                     b"5;ext=1\r\nabcde\r\n0\r\n\r\n", b"3\r\nabcXX", b"0\r\nTrailer: x\r\n\r\n",
                     b"a" * (SEARCH_LIMIT + 10) + b"needle", b"needle".rjust(SEARCH_LIMIT, b"-"),
                     b"okay", b""]),
)


@st.composite
def responses(draw) -> bytes:
    """Mostly well-formed responses, with now and then one broken part."""
    sep = b"\n" if draw(st.integers(0, 9)) == 0 else b"\r\n"
    head = draw(ODD_STATUS if draw(st.integers(0, 4)) == 0 else GOOD_STATUS) + sep
    headers = draw(st.lists(GOOD_HEADERS, max_size=4))
    if draw(st.integers(0, 5)) == 0:
        headers.insert(draw(st.integers(0, len(headers))), draw(BAD_HEADERS))
    for header in headers:
        head += header + sep
    if draw(st.integers(0, 7)) > 0:
        head += sep
    return head + draw(BODIES)


DATA = st.one_of(responses(), responses(), responses(), st.binary(max_size=300))
STATUS_RANGES = st.sampled_from([((200, 399),), ((200, 200),), ((100, 199), (204, 204)),
                                 ((300, 999),), ((0, 999),)])
NEEDLES = st.sampled_from([None, "needle", "ok", "e", "nee" * 3])


@FUZZ
@given(data=DATA,
       cuts=st.lists(st.integers(0, 10_000), max_size=4),
       search=NEEDLES, expected=STATUS_RANGES, eof=st.booleans())
@example(data=b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * HEADER_LIMIT, cuts=[], search=None,
         expected=((200, 399),), eof=False)
@example(data=b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
         cuts=[], search="needle", expected=((100, 199),), eof=False)
def test_http_verdicts_agree(data: bytes, cuts: list[int], search: str | None,
                             expected: tuple[tuple[int, int], ...], eof: bool) -> None:
    prober = http_prober(search, expected)
    reads = split(data, cuts)
    assert compiled_verdict(prober, reads, eof) == python_verdict(prober, reads, eof)


@FUZZ
@given(data=st.one_of(st.binary(max_size=200),
                      st.builds(lambda a, b: a + b"+PONG" + b, st.binary(max_size=EXPECT_LIMIT),
                                st.binary(max_size=20))),
       cuts=st.lists(st.integers(0, 10_000), max_size=4),
       expect=st.sampled_from(["PONG", "+PONG\r\n", "P", "220 "]), eof=st.booleans())
def test_tcp_expect_verdicts_agree(data: bytes, cuts: list[int], expect: str, eof: bool) -> None:
    prober = TcpProber(Check(id="t", type="tcp", host="127.0.0.1", port=6379, timeout=1.0,
                             interval=10.0, send="PING\r\n", expect=expect), allow_private=True)
    reads = split(data, cuts)
    assert compiled_verdict(prober, reads, eof) == python_verdict(prober, reads, eof)


def test_every_reason_code_has_the_python_text() -> None:
    assert engine.reason_text(0) == "ok"
    assert engine.reason_text(1503) == "status 503"
    assert engine.reason_text(8) == f"headers over {HEADER_LIMIT} bytes"
    assert engine.reason_text(2000 + 24) == "connect error: too many open files"
