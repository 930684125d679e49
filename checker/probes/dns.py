"""dns probe: a DNS server must answer one query with the expected response code.

One query over UDP per probe, one attempt inside the timeout, never a
retry. The query carries a fresh random id; an answer counts only when it
comes from the address we asked (a connected socket: the kernel drops
anything else), is a response, and echoes our id and question. Anything
else is a forgery or garbage: it is dropped and counted
(``DROPPED``), and the probe keeps waiting for the real answer until its
deadline, so a spoofer can delay a verdict to a timeout but never choose it.
After ``MAX_DROPS`` such datagrams the probe closes its socket: a flood costs
each probe a bounded amount of parsing.

The verdict is the answer's rcode against ``expect_rcode`` (default
NOERROR): "ok", or "rcode NXDOMAIN" and the like. Without EDNS the rcode is
the header's four bits, so what we compare is exactly what the server said.
"""

from __future__ import annotations

import asyncio
import random
from time import monotonic

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from healthplane.proto.config.model import Check

from .address import RESOLVER, literal
from .base import Outcome, Prober, ProbeResult
from .stream import connect_reason

MAX_ANSWER = 4096    # bytes of an answer we parse; a UDP answer without EDNS is at most 512
MAX_DROPS = 16       # datagrams dropped per probe before it stops reading (a flood)

DROPPED = [0]
"""Answers dropped as forged or malformed, process-wide (a metric reads it)."""

_rng = random.SystemRandom()   # ids an off-path spoofer cannot predict


class _Query(asyncio.DatagramProtocol):
    __slots__ = ("query", "wire", "fut", "transport", "drops")

    def __init__(self, query: dns.message.Message,
                 fut: asyncio.Future[tuple[Outcome, str, int]]) -> None:
        self.query = query
        self.wire = query.to_wire()
        self.fut = fut
        self.transport: asyncio.DatagramTransport | None = None
        self.drops = 0

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.sendto(self.wire)

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.fut.done():
            return
        try:
            if len(data) > MAX_ANSWER:
                raise dns.exception.FormError("oversized")
            answer = dns.message.from_wire(data, question_only=True)
            if not self.query.is_response(answer):
                raise dns.exception.FormError("not our answer")
        except Exception:  # noqa: BLE001 - every malformed answer is dropped alike
            DROPPED[0] += 1
            self.drops += 1
            if self.drops >= MAX_DROPS and self.transport is not None:
                # A flood: close the socket, so it costs this probe nothing
                # more; the verdict is then the deadline's.
                self.transport.abort()
            return
        self.fut.set_result((Outcome.OK, "", int(answer.rcode())))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: nobody listens there.
        if not self.fut.done():
            self.fut.set_result((*connect_reason(exc), -1))


class DnsProber:
    """Probes one dns check. Build once per check, call once per slot."""

    __slots__ = ("host", "port", "timeout", "allow_private", "resolved", "family",
                 "qname", "qtype", "rcode")

    def __init__(self, check: Check, *, allow_private: bool) -> None:
        if check.host is None or check.port is None or not check.query_name:
            raise ValueError(f"check {check.id!r}: a dns check needs host, port and query_name")
        self.host = check.host
        self.port = check.port
        self.timeout = check.timeout
        self.allow_private = allow_private
        self.family = check.ip_family
        self.resolved = literal(check.host, allow_private=allow_private)
        if self.resolved is not None:
            self.resolved = self.resolved.only(self.family)
        self.qname = dns.name.from_text(check.query_name)
        self.qtype = dns.rdatatype.from_text(check.query_type)
        self.rcode = dns.rcode.from_text(check.expect_rcode)

    async def __call__(self) -> ProbeResult:
        started = monotonic()
        outcome, reason = Outcome.ERROR, "error"
        loop = asyncio.get_running_loop()
        transport = None
        try:
            async with asyncio.timeout_at(loop.time() + self.timeout):
                resolved = self.resolved
                if resolved is None:
                    resolved = await RESOLVER.resolve(self.host, allow_private=self.allow_private)
                    resolved = resolved.only(self.family)
                if resolved.ip is None:
                    return ProbeResult(resolved.outcome, monotonic() - started, resolved.reason)
                query = dns.message.make_query(self.qname, self.qtype)
                query.id = _rng.randrange(0x10000)
                fut: asyncio.Future[tuple[Outcome, str, int]] = loop.create_future()
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Query(query, fut), remote_addr=(resolved.ip, self.port))
                outcome, reason, rcode = await fut
                if outcome is Outcome.OK and rcode != self.rcode:
                    name = dns.rcode.to_text(dns.rcode.Rcode(rcode))
                    outcome, reason = Outcome.FAILED, f"rcode {name}"
                elif outcome is Outcome.OK:
                    reason = "ok"
        except TimeoutError:
            outcome, reason = Outcome.TIMEOUT, "timeout"
        except OSError as exc:
            outcome, reason = connect_reason(exc)
        finally:
            if transport is not None:
                transport.abort()
        return ProbeResult(outcome, monotonic() - started, reason)


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """A prober for a ``type: dns`` check."""
    return DnsProber(check, allow_private=allow_private)
