"""Precomputed DNS answers for a zone, rebuilt once per health snapshot.

Everything a query can be answered with is built here ahead of time, so a
query costs one dict lookup and, for weighted records, one random draw over a
prebuilt cumulative table, whatever the health of the zone. No I/O: the
caller passes a ``status(check_id)`` function (a consumer's, usually).

Answer rules (design.md): a value whose check is unknown counts as healthy;
``failover`` answers the primary while healthy, else the secondary while
healthy, else the primary; ``multivalue`` answers every healthy value (at
most 8, a random window of 8 when more are healthy) and all of them when none
is; ``weighted`` draws one value by weight among the healthy, among all when
none is; ``simple`` answers every value and ignores health. A CNAME
answers every query type at its name (resolvers follow it). A name outside
the zone gets REFUSED; a name in the zone with no record NXDOMAIN; a known
name (or an empty non-terminal) asked for another type NODATA. Negative
answers carry the SOA in the authority section (RFC 2308).

``ANY`` over UDP gets RFC 8482's minimal answer, one synthesised HINFO
record, so no name can make the server an amplifier; over TCP (where the
source address is proven) it gets every RRset of the name.

The apex SOA, NS and glue come from :mod:`.apex`.
"""

from __future__ import annotations

import bisect
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
from healthplane.proto.config.model import Zone

from .apex import Apex

MULTIVALUE_MAX = 8
CNAME = dns.rdatatype.CNAME

StatusFn = Callable[[str], int]


class Answer:
    """One prebuilt answer: wire records whose owner name is a compression
    pointer to the question name at offset 12, and (built only when asked,
    for tests and tools) the same records as a dnspython RRset."""

    __slots__ = ("wire", "count", "_parts", "_rrset")

    def __init__(self, wire: bytes, count: int,
                 parts: tuple[dns.name.Name, int, Sequence[dns.rdata.Rdata]] | None = None,
                 rrset: dns.rrset.RRset | None = None) -> None:
        self.wire = wire
        self.count = count
        self._parts = parts
        self._rrset = rrset

    @property
    def rrset(self) -> dns.rrset.RRset:
        if self._rrset is None:
            assert self._parts is not None
            name, ttl, rdatas = self._parts
            self._rrset = dns.rrset.from_rdata_list(name, ttl, list(rdatas))
        return self._rrset


def name_wire(name: dns.name.Name) -> bytes:
    """name in uncompressed wire form (to_wire without a file always returns bytes)."""
    out = name.to_wire()
    assert out is not None
    return out


def rr_wire(rdtype: int, ttl: int, rdata: dns.rdata.Rdata) -> bytes:
    """One record without its owner name (type, class, ttl, rdlength, rdata)."""
    data = rdata.to_wire()
    assert data is not None  # as for names: no file, so bytes
    return struct.pack("!HHIH", rdtype, dns.rdataclass.IN, ttl, len(data)) + data


class NegativeSoa:
    """The authority SOA of negative answers, its names compressed.

    MNAME and RNAME mostly end in the zone's name, which every in-zone
    question ends with too: each becomes its own labels and a pointer there
    (RFC 1035 4.1.4), a third of a short negative answer. The pointer's
    target moves with the question's length, so the record is kept in
    pieces and joined per query (its length does not move).
    """

    __slots__ = ("_head", "_mname", "_rname", "_tail", "size")

    def __init__(self, origin: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        soa = cast(dns.rdtypes.ANY.SOA.SOA, rdata)
        self._mname, self._rname = (self._split(n, origin) for n in (soa.mname, soa.rname))
        self._tail = struct.pack("!IIIII", soa.serial, soa.refresh, soa.retry, soa.expire,
                                 soa.minimum)
        rdlength = sum(len(p) + (2 if c else 0) for p, c in (self._mname, self._rname)) + 20
        self._head = struct.pack("!HHIH", dns.rdatatype.SOA, dns.rdataclass.IN, ttl, rdlength)
        self.size = 2 + len(self._head) + rdlength        # with the owner's pointer

    @staticmethod
    def _split(name: dns.name.Name, origin: dns.name.Name) -> tuple[bytes, bool]:
        """(wire labels before the origin, True) for a name in the zone, else (wire, False)."""
        wire = name_wire(name)
        if not name.is_subdomain(origin):
            return wire, False
        return wire[:len(wire) - len(name_wire(origin))], True

    def render(self, origin_at: int) -> bytes:
        """The record, owner included, for a response whose origin starts at origin_at."""
        pointer = struct.pack("!H", 0xC000 | origin_at)
        (mname, m_in), (rname, r_in) = self._mname, self._rname
        return b"".join((pointer, self._head, mname, pointer if m_in else b"",
                         rname, pointer if r_in else b"", self._tail))


def _answer(rrset: dns.rrset.RRset) -> Answer:
    # Every answer's owner is the question name, which always starts at offset 12.
    wire = b"".join(b"\xc0\x0c" + rr_wire(rrset.rdtype, rrset.ttl, rd) for rd in rrset)
    return Answer(wire, len(rrset), rrset=rrset)


class Choice:
    """How one (name, type) picks its answer per query; built once per snapshot."""

    __slots__ = ("answers", "cumulative", "total", "key")

    def __init__(self, answers: Sequence[Answer],
                 weights: Sequence[int] | None = None, key: object = None) -> None:
        self.answers = tuple(answers)
        self.key = key                    # what the answer depends on, to detect change
        self.cumulative: list[int] | None = None
        self.total = 0
        if weights is not None and len(self.answers) > 1:
            acc, cum = 0, []
            for w in weights:
                acc += w
                cum.append(acc)
            self.cumulative, self.total = cum, acc

    def pick(self, rng: Callable[[], float]) -> Answer:
        return self.answers[self.index(rng)]

    def index(self, rng: Callable[[], float]) -> int:
        """Which of :attr:`answers` this query gets (the fast path keeps its own
        rendering of each, so both paths draw the same way)."""
        n = len(self.answers)
        if n == 1:
            return 0
        if self.cumulative is None:       # equally likely rotations or windows
            return int(rng() * n) % n
        point = rng() * self.total
        return min(bisect.bisect_right(self.cumulative, point), n - 1)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What to answer: rcode, answers, whether the SOA goes in authority, AA or not."""

    rcode: int
    answer: tuple[Answer, ...] = ()
    negative: bool = False           # NXDOMAIN / NODATA: SOA in the authority section
    authoritative: bool = True

    @property
    def rrsets(self) -> list[dns.rrset.RRset]:
        return [a.rrset for a in self.answer]


REFUSED = Lookup(dns.rcode.REFUSED, authoritative=False)


class AnswerTable:
    """Every answer of a zone for one health snapshot.

    Names are keyed by their lower-cased wire form: DNS compares names
    ASCII-case-insensitively and label length bytes (< 64) are never letters,
    so ``wire.lower()`` is an exact canonical key.
    """

    def __init__(self, origin: dns.name.Name, names: dict[bytes, dict[int, Choice]],
                 soa: dns.rrset.RRset, serial: int,
                 rng: Callable[[], float] = random.random, *,
                 negative_soa: dns.rrset.RRset | None = None,
                 zone: Zone | None = None, status: StatusFn | None = None,
                 apex: Apex | None = None) -> None:
        self.origin = origin
        self.origin_wire = name_wire(origin)
        self.names = names
        self.soa = soa
        negative = soa if negative_soa is None else negative_soa
        self.negative_soa = NegativeSoa(origin, negative.ttl, soa[0])
        self.serial = serial
        self.zone = zone              # what the table was built from (zone transfers)
        self.status = status
        self.apex = apex
        self._rng = rng
        self._nxdomain = Lookup(dns.rcode.NXDOMAIN, negative=True)
        self._nodata = Lookup(dns.rcode.NOERROR, negative=True)
        hinfo = dns.rrset.from_text_list(origin, soa.ttl, dns.rdataclass.IN,
                                         dns.rdatatype.HINFO, ['"RFC8482" ""'])
        self._minimal_any = Lookup(dns.rcode.NOERROR, (_answer(hinfo),))

    def lookup(self, qname: dns.name.Name, qtype: int, qwire: bytes | None = None, *,
               full_any: bool = False) -> Lookup:
        """The answer for one question (class IN assumed by the caller).

        ``qwire`` is ``qname.to_wire()`` when the caller already has it.
        ``full_any``: answer ANY with every RRset instead of RFC 8482's HINFO.
        """
        key = (name_wire(qname) if qwire is None else qwire).lower()
        types = self.names.get(key)
        if types is None:
            return self._nxdomain if qname.is_subdomain(self.origin) else REFUSED
        found = self.resolve(types, qtype, full_any=full_any)
        if isinstance(found, Lookup):
            return found
        return Lookup(dns.rcode.NOERROR, (found.pick(self._rng),))

    def resolve(self, types: dict[int, Choice], qtype: int, *,
                full_any: bool = False) -> Lookup | Choice:
        """What a name with these RRsets answers for qtype: a fixed Lookup, or the
        Choice whose pick is the one answer (NOERROR)."""
        choice = types.get(qtype)
        if choice is None:
            if qtype == dns.rdatatype.ANY and types:
                if not full_any:
                    return self._minimal_any
                return Lookup(dns.rcode.NOERROR,
                              tuple(c.pick(self._rng) for c in types.values()))
            choice = types.get(CNAME)
            if choice is None:
                return self._nodata
        return choice

    @property
    def nxdomain(self) -> Lookup:
        return self._nxdomain

    @property
    def rng(self) -> Callable[[], float]:
        return self._rng

    def signature(self) -> tuple[object, ...]:
        """A value that changes exactly when some answer would change."""
        return tuple((name, t, c.key) for name, types in self.names.items()
                     for t, c in types.items())
