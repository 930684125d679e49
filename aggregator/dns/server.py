"""The authoritative DNS front: UDP and TCP on one port, answers from an AnswerTable.

:meth:`DnsFront.handle` turns one query's wire bytes into the response's wire
bytes (or None to drop) using dnspython for parsing and rendering, and
:meth:`DnsFront.start` serves it over UDP and TCP (RFC 1035 2-byte length
framing and pipelining, RFC 7766 idle timeout, a bound on concurrent
connections). The table
is swapped whole by whoever rebuilds it (:mod:`healthplane.aggregator.dns.keeper`); a
query never waits on anything but the CPU.

Malformed input never raises out of here: shorter than a header, or a
message with QR set (a response; answering it could start a loop between two
servers), is dropped; anything else unparseable gets a header-only FORMERR.
Every outcome is counted in :attr:`DnsFront.stats`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from .answers import REFUSED, AnswerTable, Lookup

log = logging.getLogger(__name__)

HEADER = 12
DEFAULT_MAX_UDP = 1232     # DNS flag day 2020: fits any path MTU without fragments
MAX_QUERY = 4096           # far above any real query; bigger ones are not worth parsing
_REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
OPT = 41
_TCP_BATCH = 32            # pipelined queries answered per turn of the event loop
_RCODE_NAMES = {r: dns.rcode.to_text(r) for r in
                (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED)}


def formerr(wire: bytes) -> bytes:
    """A header-only FORMERR echoing the query's id, opcode and RD bit."""
    qid, flags = struct.unpack_from("!HH", wire)
    flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | dns.rcode.FORMERR
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


class DnsFront:
    """Answers DNS queries for one zone from the current :class:`AnswerTable`."""

    def __init__(self, table: AnswerTable, *, max_udp: int = DEFAULT_MAX_UDP,
                 tcp_idle_timeout: float = 10.0, max_tcp_connections: int = 128) -> None:
        self.table = table
        self.max_udp = max(512, min(max_udp, 65535))
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        # rcode names and "dropped", "truncated", "tcp_refused", "error".
        self.stats: Counter[str] = Counter()
        self.tcp_active = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_conns: set[_TcpProtocol] = set()

    # -- one query ---------------------------------------------------------

    def handle(self, wire: bytes, *, tcp: bool = False) -> bytes | None:
        """The response to one query message, or None to drop it."""
        try:
            return self._handle(wire, tcp)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("query handling failed")
            self.stats["error"] += 1
            return None

    def _handle(self, wire: bytes, tcp: bool) -> bytes | None:
        if len(wire) < HEADER or wire[2] & 0x80:
            self.stats["dropped"] += 1
            return None
        if len(wire) > MAX_QUERY:
            self.stats["FORMERR"] += 1
            return formerr(wire)
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # dnspython raises many types for the many ways bytes go wrong
            self.stats["FORMERR"] += 1
            return formerr(wire)
        if tcp:
            limit = 65535
        elif query.edns >= 0:
            # RFC 6891: a payload size below 512 means 512.
            limit = max(512, min(query.payload, self.max_udp))
        else:
            limit = 512
        if (query.opcode() != dns.opcode.QUERY or query.edns > 0
                or len(query.question) != 1):
            return self._uncommon(query, limit)
        q = query.question[0]
        qwire = q.name.to_wire()
        if q.rdclass != dns.rdataclass.IN or q.rdtype in _REFUSED_TYPES:
            found = REFUSED
        else:
            found = self.table.lookup(q.name, q.rdtype, qwire)
        return self._render(wire, query, qwire, found, limit)

    def _render(self, wire: bytes, query: dns.message.Message, qwire: bytes,
                found: Lookup, limit: int) -> bytes:
        """Assemble the response from prebuilt pieces; no per-record rendering."""
        q = query.question[0]
        question = qwire + struct.pack("!HH", q.rdtype, q.rdclass)
        answer = b"".join(a.wire for a in found.answer) if len(found.answer) != 1 \
            else found.answer[0].wire
        ancount = sum(a.count for a in found.answer)
        if found.negative:
            # The apex is a suffix of the question name: point at it there.
            table = self.table
            authority = struct.pack("!H", 0xC000 | (HEADER + len(qwire) - len(table.origin_wire))) \
                + table.soa_wire
            nscount = 1
        else:
            authority, nscount = b"", 0
        opt = b""
        if query.edns >= 0:
            opt = b"\x00" + struct.pack("!HHIH", OPT, self.max_udp, 0, 0)
        flags = 0x8000 | (wire[2] << 8 & 0x0100) | found.rcode
        if found.authoritative:
            flags |= 0x0400
        size = HEADER + len(question) + len(answer) + len(authority) + len(opt)
        if size > limit:
            # Classic truncation: keep only the question and OPT, so the client
            # retries over TCP instead of using a partial rrset.
            self.stats["truncated"] += 1
            flags |= 0x0200
            answer, authority, ancount, nscount = b"", b"", 0, 0
        self.stats[_RCODE_NAMES.get(found.rcode) or dns.rcode.to_text(found.rcode)] += 1
        return b"".join((
            wire[:2], struct.pack("!HHHHH", flags, 1, ancount, nscount, 1 if opt else 0),
            question, answer, authority, opt))

    def _uncommon(self, query: dns.message.Message, limit: int) -> bytes:
        """NOTIMP, BADVERS and multi-question FORMERR, rendered by dnspython."""
        response = dns.message.make_response(query, our_payload=self.max_udp)
        if query.opcode() != dns.opcode.QUERY:
            rcode = dns.rcode.NOTIMP
        elif query.edns > 0:
            response.use_edns(0, 0, self.max_udp)
            rcode = dns.rcode.BADVERS
        else:
            rcode = dns.rcode.FORMERR
        response.set_rcode(rcode)
        self.stats[dns.rcode.to_text(rcode)] += 1
        return response.to_wire(max_size=limit, prefer_truncation=True)

    # -- transports --------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Serve UDP and TCP on host:port (port 0: any free port); returns the port."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port))
            bound = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await loop.create_server(
                    lambda: _TcpProtocol(self), host, bound, reuse_address=True, backlog=256)
            except OSError:
                udp.close()
                if port:
                    raise
                continue   # port 0 gave a UDP port whose TCP twin is taken: try another
            self._udp = udp
            return bound
        raise OSError(f"no port on {host} free for both UDP and TCP")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._tcp_conns):
                conn.close()
            await self._tcp.wait_closed()
            self._tcp = None


class _TcpProtocol(asyncio.Protocol):
    """DNS over TCP (RFC 7766): 2-byte length framing, pipelining, idle timeout.

    A protocol rather than streams: no task or timer allocation per query,
    just one idle timer per connection re-armed per complete message. A
    message must arrive whole within the idle timeout, so a client trickling
    bytes cannot hold a connection slot. When the client stops reading our
    answers, we stop reading its queries, so nothing buffers without bound.
    """

    def __init__(self, front: DnsFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.counted = False
        self.paused = False          # reading paused (burst or blocked writes)
        self.write_blocked = False   # the client is not reading our answers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        front = self.front
        if front.tcp_active >= front.max_tcp_connections:
            front.stats["tcp_refused"] += 1
            transport.close()
            return
        front.tcp_active += 1
        front._tcp_conns.add(self)
        self.counted = True
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.front.tcp_idle_timeout, self.close)

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
            out = self.front.handle(wire, tcp=True)
            if out is None or transport.is_closing():
                self.close()
                return
            transport.write(len(out).to_bytes(2, "big") + out)
            answered += 1
        want_pause = more or self.write_blocked
        if want_pause != self.paused:
            self.paused = want_pause
            if want_pause:
                transport.pause_reading()
            else:
                transport.resume_reading()
        if answered:
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
        if self.timer is not None:
            self.timer.cancel()
        if self.counted:
            self.counted = False
            self.front.tcp_active -= 1
            self.front._tcp_conns.discard(self)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, front: DnsFront) -> None:
        self.front = front
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.front.handle(data)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that left: nothing to do.
        self.front.stats["udp_error"] += 1
