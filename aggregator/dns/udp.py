"""DNS over UDP: the compiled batch loop, or asyncio's datagram protocol.

With the compiled module (:mod:`._fastdns`) and the fast path on, the front
reads its UDP socket itself: each time the socket is readable one call reads
up to :data:`TURN` datagrams, 64 per ``recvmmsg``, answers the common ones in
C from the fast path's prebuilt responses and sends them 64 per
``sendmmsg``; the rest come back to Python (:meth:`DnsFront.handle`, which
also builds the prebuilt responses the C loop reads). Without it, asyncio's
datagram protocol hands each datagram to :meth:`DnsFront.handle`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from typing import Protocol

from healthplane.runtime import native

from .fastpath import FastAnswers

log = logging.getLogger(__name__)
NATIVE = native.load("healthplane.aggregator.dns._fastdns")
TURN = 256      # datagrams per turn of the event loop, at most: others get their turn


class Closable(Protocol):
    def close(self) -> None: ...


class DnsFront(Protocol):
    """What the UDP loops need of :class:`.server.DnsFront`."""

    fast_path: bool
    fast_answers: FastAnswers | None
    stats: Counter[str]

    def handle(self, wire: bytes, *, tcp: bool = False,
               peer: str | None = None) -> bytes | None: ...

    def handle_slow(self, wire: bytes, *, tcp: bool = False,
                    peer: str | None = None) -> bytes | None: ...


def path_name(front: DnsFront) -> str:
    """The UDP query path, for the start-up log: compiled, python or off."""
    return native.path_name(NATIVE) if front.fast_path else "off"


async def open_udp(front: DnsFront, host: str, port: int) -> tuple[Closable, int]:
    """Serve front over UDP on host:port; returns what to close and the bound port."""
    loop = asyncio.get_running_loop()
    if NATIVE is None or not front.fast_path:
        udp, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(front),
                                                     local_addr=(host, port))
        return udp, udp.get_extra_info("sockname")[1]
    error: OSError | None = None
    for family, kind, proto, _, addr in await loop.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.bind(addr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return BatchedUdp(front, sock, loop), sock.getsockname()[1]
    raise error or OSError(f"no address for {host}")


class BatchedUdp:
    """The compiled loop on one socket, driven by the event loop's readiness."""

    def __init__(self, front: DnsFront, sock: socket.socket,
                 loop: asyncio.AbstractEventLoop) -> None:
        assert NATIVE is not None
        self.front, self.sock, self.loop = front, sock, loop
        self._serve = NATIVE.serve
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        front = self.front
        fast = front.fast_answers
        try:
            if fast is None:       # not ready: every datagram to dnspython (SERVFAIL)
                declined = self._serve(self._fd, None, None, front.stats, TURN)
            else:
                declined = self._serve(self._fd, fast.entries, fast.rng, front.stats, TURN)
        except Exception:  # out of memory, at worst: this turn's datagrams are lost
            log.exception("UDP batch failed")
            front.stats["error"] += 1
            return
        for data, addr in declined:
            out = front.handle(data, peer=addr[0])
            if out is not None:
                try:
                    self.sock.sendto(out, addr)
                except OSError:     # a full buffer, or a client that left: UDP drops
                    front.stats["udp_error"] += 1

    def close(self) -> None:
        if self._fd >= 0:
            self.loop.remove_reader(self._fd)
            self._fd = -1
            self.sock.close()


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, front: DnsFront) -> None:
        self.front = front
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        fast = self.front.fast_answers
        out = fast.answer(data) if fast is not None else None
        if out is None:
            out = self.front.handle_slow(data, peer=addr[0])
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that left: nothing to do.
        self.front.stats["udp_error"] += 1
