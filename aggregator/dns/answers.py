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
from healthplane.proto import codec
from healthplane.proto.config.model import Record, RecordValue, Zone

MULTIVALUE_MAX = 8
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 604800

StatusFn = Callable[[str], int]


def _healthy(status: StatusFn, value: RecordValue) -> bool:
    # Unknown counts as healthy: only a definite "unhealthy" removes a value.
    return value.check is None or status(value.check) != codec.UNHEALTHY


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


def rr_wire(rdtype: int, ttl: int, rdata: dns.rdata.Rdata) -> bytes:
    """One record without its owner name (type, class, ttl, rdlength, rdata)."""
    data = rdata.to_wire()
    return struct.pack("!HHIH", rdtype, dns.rdataclass.IN, ttl, len(data)) + data


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
        self.soa_wire = rr_wire(soa.rdtype, soa.ttl, soa[0])    # owner name added per query
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


def _rotations(values: Sequence[RecordValue],
               limit: int = MULTIVALUE_MAX) -> list[list[RecordValue]]:
    """Up to ``limit`` rotations of values, their starts spread evenly.

    Drawn per query, they spread clients that take the first address, while
    a 256-value record still costs 8 prebuilt answers, not 256.
    """
    n = len(values)
    starts = sorted({(k * n) // limit for k in range(limit)}) if n > limit else range(n)
    return [[values[(s + k) % n] for k in range(n)] for s in starts]


def _rrset(name: dns.name.Name, rdtype: int, ttl: int, values: Sequence[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, ttl, dns.rdataclass.IN, rdtype, list(values))


def _selection(rec: Record, status: StatusFn) -> tuple[RecordValue, ...] | None:
    """The values a record answers with under this health; None when health is ignored.

    This is also the cache key of the record's prebuilt answers: the same
    selection always builds the same answers.
    """
    if rec.policy == "failover":
        assert rec.primary is not None and rec.secondary is not None
        if _healthy(status, rec.primary) or not _healthy(status, rec.secondary):
            return (rec.primary,)
        return (rec.secondary,)
    if rec.policy == "simple":
        return None
    return tuple(v for v in rec.values if _healthy(status, v)) or rec.values


class _Layout(NamedTuple):
    """What a record's answers are made of, fixed for the life of a zone."""

    name: dns.name.Name
    key: bytes                        # lower-cased wire name
    rdtype: int
    ttl: int
    ents: list[bytes]                 # empty non-terminals above the name
    records: dict[RecordValue, tuple[dns.rdata.Rdata, bytes]]   # value -> rdata, wire RR


def _layout(rec: Record, zone: Zone, origin: dns.name.Name) -> _Layout:
    name = dns.name.from_text(rec.name)
    # Empty non-terminals exist (RFC 8020): a.b.zone makes b.zone answer NODATA.
    ents, parent = [], name.parent()
    while parent != origin and parent.is_subdomain(origin):
        ents.append(parent.to_wire().lower())
        parent = parent.parent()
    rdtype = dns.rdatatype.from_text(rec.type)
    ttl = zone.ttl if rec.ttl is None else rec.ttl
    records = {}
    for v in (*rec.values, rec.primary, rec.secondary):
        if v is not None:
            rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, v.value)
            records[v] = (rd, b"\xc0\x0c" + rr_wire(rdtype, ttl, rd))
    return _Layout(name, name.to_wire().lower(), rdtype, ttl, ents, records)


def _build_choice(rec: Record, lay: _Layout, selection: tuple[RecordValue, ...] | None) -> Choice:
    def ans(values: Sequence[RecordValue]) -> Answer:
        recs = [lay.records[v] for v in values]
        return Answer(b"".join(r[1] for r in recs), len(recs),
                      (lay.name, lay.ttl, [r[0] for r in recs]))

    if selection is None:      # simple: every value, health ignored
        # Prebuilt rotations, drawn per query, spread clients that take the first address.
        return Choice([ans(r) for r in _rotations(rec.values)], key=None)
    if rec.policy == "failover":
        return Choice([ans(selection)], key=selection)
    if rec.policy == "weighted":
        weights = [max(0, v.weight) for v in selection]
        if sum(weights) == 0:
            weights = [1] * len(selection)   # all zero: equally likely rather than nothing
        return Choice([ans([v]) for v in selection], weights, key=selection)
    # multivalue
    if len(selection) <= MULTIVALUE_MAX:
        return Choice([ans(r) for r in _rotations(selection)], key=selection)
    # More than 8 healthy: one prebuilt window of 8 per starting offset, drawn per query,
    # so every healthy value gets its share and a query still costs one draw.
    n = len(selection)
    windows = [ans([selection[(s + k) % n] for k in range(MULTIVALUE_MAX)]) for s in range(n)]
    return Choice(windows, key=selection)


class ChoiceCache:
    """Prebuilt answers kept between builds of one zone.

    Rendering answers is the expensive part of a build (a 1,000-record zone
    takes a few hundred ms), and health rarely changes between two ticks, so
    a record whose selection is unchanged reuses its previous answers and a
    build costs little more than one status lookup per check. Only the
    entries used by the latest build are kept, so memory stays bounded.
    """

    def __init__(self) -> None:
        self.zone: Zone | None = None
        self.layout: list[_Layout] = []
        self.entries: dict[tuple[int, object], Choice] = {}

    def layout_for(self, zone: Zone) -> list[_Layout]:
        """Per record, its parsed name, type, ttl and rendered records (once per zone)."""
        if self.zone is not zone:
            origin = dns.name.from_text(zone.zone)
            self.layout = [_layout(rec, zone, origin) for rec in zone.records]
            self.zone, self.entries = zone, {}
        return self.layout


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
                  rng: Callable[[], float] = random.random,
                  cache: ChoiceCache | None = None) -> AnswerTable:
    """Build every answer of ``zone`` under the health given by ``status``.

    Pass the same ``cache`` to successive builds of a zone to reuse the
    answers of records whose selection did not change.
    """
    cache = cache if cache is not None else ChoiceCache()
    layout = cache.layout_for(zone)
    origin = dns.name.from_text(zone.zone)
    soa, ns, _ = apex_sets(zone, serial, nameservers)
    origin_key = origin.to_wire().lower()
    names: dict[bytes, dict[int, Choice]] = {origin_key: {}}
    used: dict[tuple[int, object], Choice] = {}
    for i, rec in enumerate(zone.records):
        lay = layout[i]
        selection = _selection(rec, status)
        choice = cache.entries.get((i, selection))
        if choice is None:
            choice = _build_choice(rec, lay, selection)
        used[(i, selection)] = choice
        names.setdefault(lay.key, {})[lay.rdtype] = choice
        for ent in lay.ents:
            names.setdefault(ent, {})
    cache.entries = used
    apex = names[origin_key]
    apex[dns.rdatatype.SOA] = Choice([_answer(soa)], key=None)
    apex[dns.rdatatype.NS] = Choice([_answer(ns)], key=None)
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
