"""tcp probe: healthy when a TCP connection opens within the timeout.

The connection is dropped as soon as it is open; nothing is sent.
"""

from __future__ import annotations

import asyncio
from typing import cast

from healthplane.proto.config.model import Check

from . import stream
from .base import Prober


class _Connect(stream.Exchange):
    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # see Exchange
        self.finish(True, "ok")


class TcpProber(stream.StreamProber):
    """Probes one check's host:port. Build once per check, call once per slot."""

    __slots__ = ()

    def __init__(self, check: Check, *, allow_private: bool) -> None:
        if check.host is None or check.port is None:
            raise ValueError(f"check {check.id!r}: a tcp check needs host and port")
        super().__init__(check.host, check.port, check.timeout, allow_private=allow_private)

    def exchange(self, loop: asyncio.AbstractEventLoop) -> stream.Exchange:
        return _Connect(loop, loop.time())


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """A prober for a ``type: tcp`` check."""
    return TcpProber(check, allow_private=allow_private)
