"""The pieces of a response that both query paths assemble the same way.

The dnspython path (:mod:`.server`) joins them per query; the fast path
(:mod:`.fastpath`) joins them once per (name, type) and keeps the bytes. One
function decides each piece, so the two cannot drift apart.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import dns.rcode

from .answers import AnswerTable, Lookup

HEADER = 12
OPT = 41
MAX_AMPLIFICATION = 4      # a negative UDP answer's bytes per query byte, at most
_RCODE_NAMES: dict[int, str] = {r: dns.rcode.to_text(r) for r in
                (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED,
                 dns.rcode.SERVFAIL)}


def rcode_name(rcode: int) -> str:
    """The stats key of a response's rcode ("NOERROR", ...)."""
    return _RCODE_NAMES.get(rcode) or dns.rcode.to_text(dns.rcode.Rcode(rcode))


class Body(NamedTuple):
    """A response past its question: flags without RD and TC, counts, records."""

    flags: int
    ancount: int
    nscount: int
    records: bytes             # answer and authority sections
    negative: bool


def body(table: AnswerTable, found: Lookup, qname_len: int) -> Body:
    """The answer and authority of ``found`` for a question name of qname_len bytes."""
    answer = b"".join(a.wire for a in found.answer) if len(found.answer) != 1 \
        else found.answer[0].wire
    ancount = sum(a.count for a in found.answer)
    if found.negative:
        # The apex is a suffix of the question name: point at it there.
        authority = table.negative_soa.render(HEADER + qname_len - len(table.origin_wire))
        nscount = 1
    else:
        authority, nscount = b"", 0
    flags = 0x8000 | found.rcode
    if found.authoritative:
        flags |= 0x0400
    return Body(flags, ancount, nscount, answer + authority, found.negative)


def opt_record(max_udp: int) -> bytes:
    """Our OPT record: version 0, no flags, no options, our payload size."""
    return b"\x00" + struct.pack("!HHIH", OPT, max_udp, 0, 0)


def udp_limit(payload: int | None, max_udp: int) -> int:
    """The largest UDP response for a query with this EDNS payload (None: no EDNS)."""
    if payload is None:
        return 512
    # RFC 6891: a payload size below 512 means 512.
    return max(512, min(payload, max_udp))


def truncates(size: int, limit: int, negative: bool, tcp: bool, query_len: int) -> bool:
    """Whether a response of ``size`` bytes goes out as TC with its records cut.

    A negative answer is no data anyone asked for: over UDP (source unproven)
    one that an operator's long SOA names would make more than
    MAX_AMPLIFICATION times the query goes TC, and the client's TCP retry
    gets it whole.
    """
    return size > limit or (negative and not tcp and size > MAX_AMPLIFICATION * query_len)


def header(flags: int, ancount: int, nscount: int, arcount: int) -> bytes:
    """Header bytes 2..12: flags and the four counts (one question)."""
    return struct.pack("!HHHHH", flags, 1, ancount, nscount, arcount)
