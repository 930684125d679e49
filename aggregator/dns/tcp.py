"""DNS over TCP (RFC 1035 4.2.2, RFC 7766): framing, pipelining, and fair slots.

A connection slot is a scarce thing a stranger can try to hold. Three rules
keep one from locking out everybody else:

* **per client**: at most ``max_per_client`` connections from one address
  (an IPv6 client by its /64); more are closed at once;
* **lifetime**: a connection lives at most ``max_lifetime`` seconds however
  busy it is, and at most ``idle_timeout`` without a complete query, so a
  trickle of one query every few seconds cannot keep a slot forever;
* **when full**, a new connection takes the slot of the one that has been
  quiet the longest (RFC 7766 6.2.3 lets a server close idle connections
  under pressure), so a client that asks gets an answer even while every
  slot is held.

A protocol rather than streams: no task or timer allocation per query. A
message must arrive whole within the idle timeout. When the client stops
reading our answers, we stop reading its queries, so nothing buffers without
bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

_TCP_BATCH = 32            # pipelined queries answered per turn of the event loop

Handler = Callable[[bytes, str | None], "list[bytes] | None"]


@dataclass(frozen=True, slots=True)
class TcpLimits:
    idle_timeout: float = 10.0       # seconds without a complete query
    max_lifetime: float = 60.0       # seconds, however busy
    max_connections: int = 128
    max_per_client: int = 16


def client_key(peer: str | None) -> str:
    """The unit a per-client limit counts: the address, an IPv6 one by its /64."""
    if peer is None:
        return ""
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip)


class TcpPool:
    """The connection slots of one listener, in order of last activity."""

    def __init__(self, handler: Handler, limits: TcpLimits, stats: Counter[str]) -> None:
        self.handler = handler
        self.limits = limits
        self.stats = stats
        self.conns: dict[TcpConnection, None] = {}   # least recently active first
        self.per_client: Counter[str] = Counter()

    def protocol(self) -> TcpConnection:
        return TcpConnection(self)

    def admit(self, conn: TcpConnection) -> bool:
        key = conn.client
        if self.per_client[key] >= self.limits.max_per_client:
            self.stats["tcp_refused"] += 1
            return False
        if len(self.conns) >= self.limits.max_connections:
            quietest = next(iter(self.conns))
            self.stats["tcp_evicted"] += 1
            quietest.close()
            self.release(quietest)
        self.conns[conn] = None
        self.per_client[key] += 1
        return True

    def touch(self, conn: TcpConnection) -> None:
        if conn in self.conns:
            del self.conns[conn]
            self.conns[conn] = None

    def release(self, conn: TcpConnection) -> None:
        if self.conns.pop(conn, 0) is None:
            self.per_client[conn.client] -= 1
            if self.per_client[conn.client] <= 0:
                del self.per_client[conn.client]

    def close_all(self) -> None:
        for conn in list(self.conns):
            conn.close()


class TcpConnection(asyncio.Protocol):
    """One client connection: 2-byte length framing, pipelining, both timers."""

    def __init__(self, pool: TcpPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.peer: str | None = None
        self.buf = bytearray()
        self.idle: asyncio.TimerHandle | None = None
        self.lifetime: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.paused = False          # reading paused (burst or blocked writes)
        self.write_blocked = False   # the client is not reading our answers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("peername")
        self.peer = name[0] if isinstance(name, tuple) else None
        self.client = client_key(self.peer)
        if not self.pool.admit(self):
            transport.close()
            return
        loop = asyncio.get_running_loop()
        limits = self.pool.limits
        self.deadline = loop.time() + limits.max_lifetime
        self.lifetime = loop.call_at(self.deadline, self.close)
        self._arm()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        # Never past the lifetime: a query does not buy time beyond it.
        at = min(loop.time() + self.pool.limits.idle_timeout, self.deadline)
        self.idle = loop.call_at(at, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._serve_buffer()

    def _serve_buffer(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        buf = self.buf
        answered = 0
        more = False
        while len(buf) >= 2 and not self.write_blocked:
            if answered == _TCP_BATCH:
                # A burst of pipelined queries: yield to other clients (and to
                # UDP) between batches, reading nothing more meanwhile.
                more = True
                asyncio.get_running_loop().call_soon(self._serve_buffer)
                break
            size = (buf[0] << 8) | buf[1]
            if size == 0:
                self.close()
                return
            if len(buf) < 2 + size:
                break
            wire = bytes(buf[2:2 + size])
            del buf[:2 + size]
            out = self.pool.handler(wire, self.peer)
            if out is None or transport.is_closing():
                self.close()
                return
            transport.write(b"".join(len(m).to_bytes(2, "big") + m for m in out))
            answered += 1
        want_pause = more or self.write_blocked
        if want_pause != self.paused:
            self.paused = want_pause
            if want_pause:
                transport.pause_reading()
            else:
                transport.resume_reading()
        if answered:
            self.pool.touch(self)
            self._arm()

    def pause_writing(self) -> None:
        # The client is not reading our answers: read no more of its queries.
        self.write_blocked = True
        if self.transport is not None and not self.paused and not self.transport.is_closing():
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        self._serve_buffer()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.idle, self.lifetime):
            if timer is not None:
                timer.cancel()
        self.pool.release(self)
