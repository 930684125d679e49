"""Building an :class:`~.answers.AnswerTable` from a zone and a health function.

Rendering answers is the expensive part (a 1,000-record zone takes a few
hundred ms), so :class:`ChoiceCache` keeps each record's prebuilt answers
between builds and a record whose selection did not change reuses them.
:func:`selection` is also what a zone transfer serves for a record.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import NamedTuple

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from healthplane.proto import codec
from healthplane.proto.config.model import Record, RecordValue, Zone

from .answers import (
    MULTIVALUE_MAX,
    Answer,
    AnswerTable,
    Choice,
    StatusFn,
    _answer,
    name_wire,
    rr_wire,
)
from .apex import apex_sets


def _healthy(status: StatusFn, value: RecordValue) -> bool:
    # Unknown counts as healthy: only a definite "unhealthy" removes a value.
    return value.check is None or status(value.check) != codec.UNHEALTHY


def _rotations(values: Sequence[RecordValue],
               limit: int = MULTIVALUE_MAX) -> list[list[RecordValue]]:
    """Up to ``limit`` rotations of values, their starts spread evenly.

    Drawn per query, they spread clients that take the first address, while
    a 256-value record still costs 8 prebuilt answers, not 256.
    """
    n = len(values)
    starts = sorted({(k * n) // limit for k in range(limit)}) if n > limit else range(n)
    return [[values[(s + k) % n] for k in range(n)] for s in starts]


def selection(rec: Record, status: StatusFn) -> tuple[RecordValue, ...] | None:
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
        ents.append(name_wire(parent).lower())
        parent = parent.parent()
    rdtype = dns.rdatatype.from_text(rec.type)
    ttl = zone.ttl if rec.ttl is None else rec.ttl
    records = {}
    for v in (*rec.values, rec.primary, rec.secondary):
        if v is not None:
            rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, v.value)
            records[v] = (rd, b"\xc0\x0c" + rr_wire(rdtype, ttl, rd))
    return _Layout(name, name_wire(name).lower(), rdtype, ttl, ents, records)


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
    apex_rrsets = apex_sets(zone, serial, nameservers)
    origin_key = name_wire(origin).lower()
    names: dict[bytes, dict[int, Choice]] = {origin_key: {}}
    used: dict[tuple[int, object], Choice] = {}
    for i, rec in enumerate(zone.records):
        lay = layout[i]
        chosen = selection(rec, status)
        choice = cache.entries.get((i, chosen))
        if choice is None:
            choice = _build_choice(rec, lay, chosen)
        used[(i, chosen)] = choice
        names.setdefault(lay.key, {})[lay.rdtype] = choice
        for ent in lay.ents:
            names.setdefault(ent, {})
    cache.entries = used
    apex = names[origin_key]
    apex[dns.rdatatype.SOA] = Choice([_answer(apex_rrsets.soa)], key=None)
    apex[dns.rdatatype.NS] = Choice([_answer(apex_rrsets.ns)], key=None)
    for glue in apex_rrsets.glue:
        names.setdefault(name_wire(glue.name).lower(), {})[glue.rdtype] = \
            Choice([_answer(glue)], key=None)
    return AnswerTable(origin, names, apex_rrsets.soa, serial, rng,
                       negative_soa=apex_rrsets.negative_soa, zone=zone, status=status,
                       apex=apex_rrsets)
