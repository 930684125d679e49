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
none is; ``simple`` answers every value and ignores health. A name outside
the zone gets REFUSED; a name in the zone with no record NXDOMAIN; a known
name (or an empty non-terminal) asked for another type NODATA. Negative
answers carry the SOA in the authority section (RFC 2308).

The apex gets a synthesised SOA and NS set: the primary name server
(``mname``) is the first of ``nameservers`` (default ``ns1.<zone>``), the
mailbox ``hostmaster.<zone>``, and the serial the Unix time at which the
served answers last changed (strictly increasing, so it only moves when a
health change moved an answer).
"""

from __future__ import annotations

import bisect
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from proto import codec
from proto.config.model import Record, RecordValue, Zone

MULTIVALUE_MAX = 8
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 604800

StatusFn = Callable[[str], int]


def _healthy(status: StatusFn, value: RecordValue) -> bool:
    # Unknown counts as healthy: only a definite "unhealthy" removes a value.
    return value.check is None or status(value.check) != codec.UNHEALTHY


class Answer(NamedTuple):
    """One prebuilt answer: the rrset, and its wire form with the owner name
    written as a compression pointer to the question name at offset 12."""

    rrset: dns.rrset.RRset
    wire: bytes
    count: int


def rr_wire(rrset: dns.rrset.RRset, rdatas: Sequence[dns.rdata.Rdata] | None = None) -> bytes:
    """The rrset's records without owner names (type, class, ttl, rdlength, rdata)."""
    out = []
    for rd in rdatas if rdatas is not None else list(rrset):
        data = rd.to_wire()
        out.append(struct.pack("!HHIH", rrset.rdtype, rrset.rdclass, rrset.ttl, len(data)) + data)
    return b"".join(out)


def _answer(rrset: dns.rrset.RRset) -> Answer:
    # Every answer's owner is the question name, which always starts at offset 12.
    rdatas = list(rrset)
    return Answer(rrset, b"".join(b"\xc0\x0c" + rr_wire(rrset, [rd]) for rd in rdatas), len(rdatas))


class Choice:
    """How one (name, type) picks its answer per query; built once per snapshot."""

    __slots__ = ("answers", "cumulative", "total", "key")

    def __init__(self, rrsets: Sequence[dns.rrset.RRset],
                 weights: Sequence[int] | None = None, key: object = None) -> None:
        self.answers = tuple(_answer(r) for r in rrsets)
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
        answers = self.answers
        if len(answers) == 1:
            return answers[0]
        if self.cumulative is None:       # equally likely rotations or windows
            return answers[int(rng() * len(answers)) % len(answers)]
        point = rng() * self.total
        return answers[min(bisect.bisect_right(self.cumulative, point), len(answers) - 1)]


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
                 rng: Callable[[], float] = random.random) -> None:
        self.origin = origin
        self.origin_wire = origin.to_wire()
        self.names = names
        self.soa = soa
        self.soa_wire = rr_wire(soa)     # owner name added per query
        self.serial = serial
        self._rng = rng
        self._nxdomain = Lookup(dns.rcode.NXDOMAIN, negative=True)
        self._nodata = Lookup(dns.rcode.NOERROR, negative=True)

    def lookup(self, qname: dns.name.Name, qtype: int, qwire: bytes | None = None) -> Lookup:
        """The answer for one question (class IN assumed by the caller).

        ``qwire`` is ``qname.to_wire()`` when the caller already has it.
        """
        key = (qname.to_wire() if qwire is None else qwire).lower()
        types = self.names.get(key)
        if types is None:
            return self._nxdomain if qname.is_subdomain(self.origin) else REFUSED
        if qtype == dns.rdatatype.ANY:
            if not types:
                return self._nodata
            return Lookup(dns.rcode.NOERROR, tuple(c.pick(self._rng) for c in types.values()))
        choice = types.get(qtype)
        if choice is None:
            return self._nodata
        return Lookup(dns.rcode.NOERROR, (choice.pick(self._rng),))

    def signature(self) -> tuple[object, ...]:
        """A value that changes exactly when some answer would change."""
        return tuple((name, t, c.key) for name, types in self.names.items()
                     for t, c in types.items())


def _rotations(rrsets_values: Sequence[str]) -> list[list[str]]:
    n = len(rrsets_values)
    return [[rrsets_values[(s + k) % n] for k in range(n)] for s in range(n)]


def _rrset(name: dns.name.Name, rdtype: int, ttl: int, values: Sequence[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, ttl, dns.rdataclass.IN, rdtype, list(values))


def _record_choice(rec: Record, ttl: int, status: StatusFn) -> Choice:
    name = dns.name.from_text(rec.name)
    rdtype = dns.rdatatype.from_text(rec.type)

    def rr(values: Sequence[RecordValue]) -> dns.rrset.RRset:
        return _rrset(name, rdtype, ttl, [v.value for v in values])

    if rec.policy == "failover":
        assert rec.primary is not None and rec.secondary is not None
        if _healthy(status, rec.primary) or not _healthy(status, rec.secondary):
            chosen = rec.primary
        else:
            chosen = rec.secondary
        return Choice([rr([chosen])], key=chosen.value)
    if rec.policy == "simple":
        # Prebuilt rotations, drawn per query, spread clients that take the first address.
        values = [v.value for v in rec.values]
        return Choice([_rrset(name, rdtype, ttl, r) for r in _rotations(values)], key=None)
    healthy = [v for v in rec.values if _healthy(status, v)] or list(rec.values)
    key = tuple(v.value for v in healthy)
    if rec.policy == "weighted":
        weights = [max(0, v.weight) for v in healthy]
        if sum(weights) == 0:
            weights = [1] * len(healthy)   # all zero: equally likely rather than nothing
        return Choice([rr([v]) for v in healthy], weights, key=key)
    # multivalue
    if len(healthy) <= MULTIVALUE_MAX:
        return Choice([_rrset(name, rdtype, ttl, r)
                       for r in _rotations([v.value for v in healthy])], key=key)
    # More than 8 healthy: one prebuilt window of 8 per starting offset, drawn per query,
    # so every healthy value gets its share and a query still costs one draw.
    n = len(healthy)
    windows = [rr([healthy[(s + k) % n] for k in range(MULTIVALUE_MAX)]) for s in range(n)]
    return Choice(windows, key=key)


def apex_sets(zone: Zone, serial: int, nameservers: Sequence[str] = ()
              ) -> tuple[dns.rrset.RRset, dns.rrset.RRset, dns.rrset.RRset]:
    """The synthesised (SOA, NS, negative-answer SOA) rrsets of the apex."""
    origin = dns.name.from_text(zone.zone)
    ns_names = [dns.name.from_text(n, origin) for n in nameservers] or \
        [dns.name.from_text("ns1", origin)]
    hostmaster = dns.name.from_text("hostmaster", origin)
    soa_text = (f"{ns_names[0].to_text()} {hostmaster.to_text()} {serial} "
                f"{SOA_REFRESH} {SOA_RETRY} {SOA_EXPIRE} {zone.ttl}")
    soa = _rrset(origin, dns.rdatatype.SOA, zone.ttl, [soa_text])
    ns = _rrset(origin, dns.rdatatype.NS, zone.ttl, [n.to_text() for n in ns_names])
    # RFC 2308: a negative answer is cached for min(SOA TTL, SOA minimum); both
    # are the zone ttl here, so the apex SOA itself serves as the negative one.
    return soa, ns, soa


def build_answers(zone: Zone, status: StatusFn, *, serial: int,
                  nameservers: Sequence[str] = (),
                  rng: Callable[[], float] = random.random) -> AnswerTable:
    """Build every answer of ``zone`` under the health given by ``status``."""
    origin = dns.name.from_text(zone.zone)
    soa, ns, _ = apex_sets(zone, serial, nameservers)
    names: dict[bytes, dict[int, Choice]] = {origin.to_wire().lower(): {}}
    for rec in zone.records:
        name = dns.name.from_text(rec.name)
        ttl = zone.ttl if rec.ttl is None else rec.ttl
        names.setdefault(name.to_wire().lower(), {})[dns.rdatatype.from_text(rec.type)] = \
            _record_choice(rec, ttl, status)
        # Empty non-terminals exist (RFC 8020): a.b.zone makes b.zone answer NODATA.
        parent = name.parent()
        while parent != origin and parent.is_subdomain(origin):
            names.setdefault(parent.to_wire().lower(), {})
            parent = parent.parent()
    apex = names[origin.to_wire().lower()]
    apex[dns.rdatatype.SOA] = Choice([soa], key=None)
    apex[dns.rdatatype.NS] = Choice([ns], key=None)
    return AnswerTable(origin, names, soa, serial, rng)


class SerialClock:
    """SOA serials: the Unix time of the last answer change, strictly increasing."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.serial = int(wall()) & 0xFFFFFFFF
        self._signature: tuple[object, ...] | None = None

    def advance(self, signature: tuple[object, ...]) -> bool:
        """Move the serial if ``signature`` differs from the last one; True when it moved."""
        if signature == self._signature:
            return False
        first = self._signature is None
        self._signature = signature
        if not first:
            self.serial = max(self.serial + 1, int(self._wall())) & 0xFFFFFFFF
        return True
