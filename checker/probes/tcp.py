"""tcp probe: healthy when a TCP connection opens within the timeout.

Without ``send``/``expect`` the connection is dropped as soon as it is open
and nothing is sent. With ``send`` its bytes are written once connected;
with ``expect`` the bytes read (at most ``EXPECT_LIMIT``) must contain the
string before the one deadline, as Envoy's TCP health check and HAProxy's
``tcp-check expect`` do for a Redis ``PING``/``+PONG`` or an SMTP banner.
Strings are sent and matched as UTF-8. ``send`` without ``expect`` is
judged on the connect alone: the bytes are handed to the kernel and the
connection is reset at once, like every probe's (no TIME_WAIT), so the
target may or may not read them.
"""

from __future__ import annotations

import asyncio
from typing import cast

from healthplane.proto.config.model import Check

from . import stream
from .base import Outcome, Prober

EXPECT_LIMIT = 5120   # bytes read looking for the expect string


class _Connect(stream.Exchange):
    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # see Exchange
        self.finish(Outcome.OK, "ok")


class _Talk(stream.Exchange):
    """Sends ``send`` (if any), then waits for ``expect`` (if any) in the first bytes."""

    __slots__ = ("prober", "buffer", "needle")

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float, prober: TcpProber) -> None:
        super().__init__(loop, t0)
        self.prober = prober
        self.buffer = bytearray()
        self.needle: bytes = prober.expect or b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream = cast(asyncio.Transport, transport)  # see Exchange
        if self.fut.done():
            stream.abort()
            return
        if self.prober.send:
            stream.write(self.prober.send)
        if self.prober.expect is None:
            self.finish(Outcome.OK, "ok")

    def data_received(self, data: bytes) -> None:
        if self.fut.done():
            return
        buffer = self.buffer
        needle = self.needle
        # Search only the new bytes plus an overlap, as the http search does.
        start = max(0, len(buffer) - len(needle) + 1)
        buffer += data[:EXPECT_LIMIT - len(buffer)]
        if buffer.find(needle, start) >= 0:
            self.finish(Outcome.OK, "ok")
        elif len(buffer) >= EXPECT_LIMIT:
            self.finish(Outcome.FAILED, "expect string missing")

    def eof_received(self) -> bool | None:
        if not self.fut.done():
            self.finish(Outcome.FAILED, "expect string missing")
        return None


class TcpProber(stream.StreamProber):
    """Probes one check's host:port. Build once per check, call once per slot."""

    __slots__ = ("send", "expect")

    def __init__(self, check: Check, *, allow_private: bool) -> None:
        if check.host is None or check.port is None:
            raise ValueError(f"check {check.id!r}: a tcp check needs host and port")
        super().__init__(check.host, check.port, check.timeout, allow_private=allow_private,
                         family=check.ip_family)
        self.send = check.send.encode("utf-8") if check.send else None
        self.expect = check.expect.encode("utf-8") if check.expect else None

    def exchange(self, loop: asyncio.AbstractEventLoop) -> stream.Exchange:
        if self.send is None and self.expect is None:
            return _Connect(loop, loop.time())
        return _Talk(loop, loop.time(), self)


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """A prober for a ``type: tcp`` check."""
    return TcpProber(check, allow_private=allow_private)
