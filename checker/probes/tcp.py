"""tcp probe: healthy when a TCP connection opens within the timeout.

The connection is dropped as soon as it is open; nothing is sent.
"""

from __future__ import annotations

import asyncio

from proto.config.model import Check

from . import address, stream
from .base import Prober, ProbeResult


class _Connect(stream.Exchange):
    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport
        self.finish(True, "ok")


class TcpProber:
    """Probes one check's host:port. Build once per check, call once per slot."""

    __slots__ = ("host", "port", "timeout", "allow_private", "resolved")

    def __init__(self, check: Check, *, allow_private: bool) -> None:
        if check.host is None or check.port is None:
            raise ValueError(f"check {check.id!r}: a tcp check needs host and port")
        self.host = check.host
        self.port = check.port
        self.timeout = check.timeout
        self.allow_private = allow_private
        # An IP literal is judged once here; a name is resolved (cached) per probe.
        self.resolved = address.literal(check.host, allow_private=allow_private)

    async def __call__(self) -> ProbeResult:
        loop = asyncio.get_running_loop()
        ex = _Connect(loop, loop.time())
        return await stream.run(ex, self.resolved, self.host, self.port, self.timeout,
                                allow_private=self.allow_private)


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """A prober for a ``type: tcp`` check."""
    return TcpProber(check, allow_private=allow_private)
