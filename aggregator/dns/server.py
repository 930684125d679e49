"""The authoritative DNS front: UDP and TCP on one port, answers from an AnswerTable.

:meth:`DnsFront.handle` turns one query's wire bytes into the response's wire
bytes (or None to drop): common queries from prebuilt bytes (:mod:`.fastpath`),
the rest parsed by dnspython; :meth:`DnsFront.start` serves it over UDP and
TCP (:mod:`.tcp`). Transfers and TSIG-signed queries take :mod:`.transfer`.
The table is swapped whole by whoever rebuilds it (:mod:`healthplane.aggregator.dns.keeper`); a
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

from .answers import REFUSED, AnswerTable, Lookup, name_wire
from .fastpath import FastAnswers, fast_path_enabled
from .render import HEADER, body, header, opt_record, rcode_name, truncates, udp_limit
from .tcp import TcpLimits, TcpPool
from .transfer import (
    XFR_TYPES,
    TransferPolicy,
    signed_answer,
    transfer_messages,
    tsig_refusal,
    verify,
)
from .udp import Closable, open_udp

log = logging.getLogger(__name__)

DEFAULT_MAX_UDP = 1232     # DNS flag day 2020: fits any path MTU without fragments
MAX_QUERY = 4096           # far above any real query; bigger ones are not worth parsing
NOT_READY = Lookup(dns.rcode.SERVFAIL, authoritative=False)


def formerr(wire: bytes) -> bytes:
    """A header-only FORMERR echoing the query's id, opcode and RD bit."""
    qid, flags = struct.unpack_from("!HH", wire)
    flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | dns.rcode.FORMERR
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


class DnsFront:
    """Answers DNS queries for one zone from the current :class:`AnswerTable`."""

    def __init__(self, table: AnswerTable, *, max_udp: int = DEFAULT_MAX_UDP,
                 tcp_idle_timeout: float = 10.0, max_tcp_connections: int = 128,
                 tcp_limits: TcpLimits | None = None,
                 transfer: TransferPolicy | None = None, ready: bool = True,
                 fast_path: bool | None = None) -> None:
        self.max_udp = max(512, min(max_udp, 65535))
        self.transfer = transfer      # None: transfers REFUSED, signed queries NOTAUTH
        # False until the answers come from a real health snapshot: a secondary must
        # not take a zone built before the front knew anything (SERVFAIL: retry later).
        self.transfers_ready = True
        # rcode names and "dropped", "truncated", "tcp_refused", "tcp_evicted",
        # "error", "xfr", "xfr_refused", "tsig_refused".
        self.stats: Counter[str] = Counter()
        # The prebuilt-bytes path for common queries (None: every query parsed).
        self.fast_path = fast_path_enabled() if fast_path is None else fast_path
        self.fast_answers: FastAnswers | None = None
        self._table = table
        # False until the first health snapshot: names of the zone then get
        # SERVFAIL, which a resolver answers by asking another of the zone's
        # servers (and caches for seconds at most), where an answer from no
        # data would count every check as healthy and be cached for the TTL.
        self.ready = ready
        limits = tcp_limits or TcpLimits(idle_timeout=tcp_idle_timeout,
                                         max_connections=max_tcp_connections)
        self.tcp_pool = TcpPool(self._handle_tcp, limits, self.stats)
        self._udp: Closable | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def table(self) -> AnswerTable:
        return self._table

    @table.setter
    def table(self, table: AnswerTable) -> None:
        # Swapped whole, with its prebuilt responses: a query sees one table or the other.
        self._table = table
        self._refresh_fast()

    @property
    def ready(self) -> bool:
        return self._ready

    @ready.setter
    def ready(self, ready: bool) -> None:
        self._ready = ready
        self._refresh_fast()

    def _refresh_fast(self) -> None:
        # Before the first snapshot every in-zone answer is SERVFAIL: the slow path has it.
        self.fast_answers = (FastAnswers(self._table, self.max_udp, self.stats)
                      if self.fast_path and getattr(self, "_ready", False) else None)

    @property
    def tcp_active(self) -> int:
        return len(self.tcp_pool.conns)

    # -- one query ---------------------------------------------------------

    def handle(self, wire: bytes, *, tcp: bool = False, peer: str | None = None) -> bytes | None:
        """The response to one query message, or None to drop it."""
        fast = self.fast_answers
        if fast is not None and (quick := fast.answer(wire, tcp)) is not None:
            return quick
        out = self._guarded(wire, tcp, peer)
        return out[0] if isinstance(out, list) else out

    def _handle_tcp(self, wire: bytes, peer: str | None) -> list[bytes] | None:
        fast = self.fast_answers
        if fast is not None and (out := fast.answer(wire, True)) is not None:
            return [out]
        slow = self._guarded(wire, True, peer)
        return [slow] if isinstance(slow, bytes) else slow

    def handle_slow(self, wire: bytes, *, tcp: bool = False,
                    peer: str | None = None) -> bytes | None:
        """:meth:`handle` on the dnspython path only (what the fast path must match)."""
        out = self._guarded(wire, tcp, peer)
        return out[0] if isinstance(out, list) else out

    def _guarded(self, wire: bytes, tcp: bool, peer: str | None) -> bytes | list[bytes] | None:
        try:
            return self._handle(wire, tcp, peer)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("query handling failed")
            self.stats["error"] += 1
            return None

    def _handle(self, wire: bytes, tcp: bool, peer: str | None) -> bytes | list[bytes] | None:
        if len(wire) < HEADER or wire[2] & 0x80:
            self.stats["dropped"] += 1
            return None
        if len(wire) > MAX_QUERY:
            self.stats["FORMERR"] += 1
            return formerr(wire)
        try:
            # keyring=False: a TSIG record is read, not checked (only the slow path does).
            query = dns.message.from_wire(wire, keyring=False)
        except Exception:  # dnspython raises many types for the many ways bytes go wrong
            self.stats["FORMERR"] += 1
            return formerr(wire)
        limit = 65535 if tcp else udp_limit(
            query.payload if query.edns >= 0 else None, self.max_udp)
        if (query.opcode() != dns.opcode.QUERY or query.edns > 0
                or len(query.question) != 1):
            return self._uncommon(query, limit)
        q = query.question[0]
        if query.had_tsig or q.rdtype in XFR_TYPES:
            return self._checked(wire, query, tcp, peer, limit)
        qwire = name_wire(q.name)
        if q.rdclass != dns.rdataclass.IN:
            found = REFUSED
        else:
            found = self.table.lookup(q.name, q.rdtype, qwire, full_any=tcp)
            if not self.ready and found is not REFUSED:
                # No health snapshot yet: no answer from nothing (see ready).
                found = NOT_READY
        return self._render(wire, query, qwire, found, limit, tcp)

    def _checked(self, wire: bytes, query: dns.message.Message, tcp: bool, peer: str | None,
                 limit: int) -> bytes | list[bytes]:
        """Zone transfers and TSIG-signed queries: the ACL, the key, then the answer."""
        policy = self.transfer
        signed = None
        if query.had_tsig:
            checked = verify(wire, query, policy.key if policy else None)
            if isinstance(checked, int):
                self.stats["tsig_refused"] += 1
                return tsig_refusal(query, checked)
            signed = checked
        q = query.question[0]
        table = self.table
        if q.rdtype in XFR_TYPES:
            if (not tcp or policy is None or not policy.allowed(peer)
                    or (policy.key is not None and signed is None)):
                self.stats["xfr_refused"] += 1
                found = REFUSED
            elif not self.transfers_ready:
                self.stats["xfr_not_ready"] += 1
                found = NOT_READY
            else:
                self.stats["xfr"] += 1
                return transfer_messages(signed or query, table)
        elif q.rdclass != dns.rdataclass.IN:
            found = REFUSED
        else:
            found = table.lookup(q.name, q.rdtype, full_any=tcp)
            if not self.ready and found is not REFUSED:
                # No health snapshot yet: no answer from nothing (see ready).
                found = NOT_READY
        if signed is None:
            return self._render(wire, query, name_wire(q.name), found, limit, tcp)
        self.stats[dns.rcode.to_text(dns.rcode.Rcode(found.rcode))] += 1
        return signed_answer(signed, found, table, limit)

    def _render(self, wire: bytes, query: dns.message.Message, qwire: bytes,
                found: Lookup, limit: int, tcp: bool) -> bytes:
        """Assemble the response from prebuilt pieces; no per-record rendering."""
        q = query.question[0]
        question = qwire + struct.pack("!HH", q.rdtype, q.rdclass)
        b = body(self.table, found, len(qwire))
        opt = opt_record(self.max_udp) if query.edns >= 0 else b""
        flags = b.flags | (wire[2] << 8 & 0x0100)
        records, ancount, nscount = b.records, b.ancount, b.nscount
        size = HEADER + len(question) + len(records) + len(opt)
        if truncates(size, limit, b.negative, tcp, len(wire)):
            # Classic truncation: keep only the question and OPT, so the client
            # retries over TCP instead of using a partial rrset.
            self.stats["truncated"] += 1
            flags |= 0x0200
            records, ancount, nscount = b"", 0, 0
        self.stats[rcode_name(found.rcode)] += 1
        return b"".join((wire[:2], header(flags, ancount, nscount, 1 if opt else 0),
                         question, records, opt))

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
            udp, bound = await open_udp(self, host, port)
            try:
                self._tcp = await loop.create_server(
                    self.tcp_pool.protocol, host, bound, reuse_address=True, backlog=256)
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
            self.tcp_pool.close_all()
            await self._tcp.wait_closed()
            self._tcp = None
