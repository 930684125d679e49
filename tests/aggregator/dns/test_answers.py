"""Answer rules per policy, table-driven, on prebuilt answer tables (no sockets)."""

from __future__ import annotations

import random
from collections import Counter

import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from healthplane.aggregator.dns.apex import SerialClock
from healthplane.aggregator.dns.build import ChoiceCache, build_answers
from healthplane.proto import codec
from healthplane.proto.config.model import Record, RecordValue, Zone

H, U, X = codec.HEALTHY, codec.UNHEALTHY, codec.UNKNOWN

ZONE = Zone(zone="example.test.", ttl=30, records=(
    Record(name="api.example.test.", type="A", policy="failover",
           primary=RecordValue("192.0.2.10", "p"), secondary=RecordValue("192.0.2.20", "s")),
    Record(name="www.example.test.", type="A", policy="multivalue",
           values=tuple(RecordValue(f"192.0.2.{i}", f"w{i}") for i in range(1, 4))),
    Record(name="many.example.test.", type="AAAA", policy="multivalue",
           values=tuple(RecordValue(f"2001:db8::{i:x}", f"m{i}") for i in range(12))),
    Record(name="img.example.test.", type="A", policy="weighted",
           values=(RecordValue("192.0.2.5", "w1", 3), RecordValue("192.0.2.6", "w3", 1))),
    Record(name="static.example.test.", type="A", policy="simple",
           values=(RecordValue("192.0.2.30"), RecordValue("192.0.2.31", "p"))),
    Record(name="deep.ent.example.test.", type="A", policy="simple",
           values=(RecordValue("192.0.2.40"),), ttl=5),
))


def answer_sets(states: dict[str, int], name: str, rdtype: str = "A",
                draws: int = 200) -> set[frozenset[str]]:
    table = build_answers(ZONE, lambda c: states.get(c, X), serial=1,
                          rng=random.Random(7).random)
    out = set()
    for _ in range(draws):
        found = table.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
        assert found.rcode == dns.rcode.NOERROR and found.authoritative
        out.add(frozenset(rd.to_text() for rrset in found.rrsets for rd in rrset))
    return out


A10, A20 = "192.0.2.10", "192.0.2.20"


@pytest.mark.parametrize("states, expected", [
    ({}, {A10}),                                  # unknown counts as healthy
    ({"p": H, "s": H}, {A10}),
    ({"p": U, "s": H}, {A20}),
    ({"p": U, "s": X}, {A20}),                    # unknown secondary is healthy
    ({"p": U, "s": U}, {A10}),                    # both down: fail open to primary
    ({"p": H, "s": U}, {A10}),
])
def test_failover(states: dict[str, int], expected: set[str]) -> None:
    assert answer_sets(states, "api.example.test.") == {frozenset(expected)}


W = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


@pytest.mark.parametrize("states, expected", [
    ({}, W),
    ({"w1": U}, W[1:]),
    ({"w1": U, "w2": H, "w3": X}, W[1:]),
    ({"w1": U, "w2": U}, W[2:]),
    ({"w1": U, "w2": U, "w3": U}, W),             # none healthy: all of them
])
def test_multivalue(states: dict[str, int], expected: list[str]) -> None:
    assert answer_sets(states, "www.example.test.") == {frozenset(expected)}


def test_multivalue_answers_at_most_eight_and_spreads_them() -> None:
    states = {f"m{i}": H for i in range(12)} | {"m0": U}
    seen = answer_sets(states, "many.example.test.", "AAAA", draws=400)
    assert all(len(s) == 8 for s in seen)
    assert len(seen) > 1
    union = set().union(*seen)
    assert union == {f"2001:db8::{i:x}" for i in range(1, 12)}


def test_multivalue_none_healthy_still_at_most_eight() -> None:
    seen = answer_sets({f"m{i}": U for i in range(12)}, "many.example.test.", "AAAA")
    assert all(len(s) == 8 for s in seen)


def test_multivalue_order_rotates() -> None:
    table = build_answers(ZONE, lambda c: X, serial=1, rng=random.Random(1).random)
    firsts = Counter(table.lookup(dns.name.from_text("www.example.test."), dns.rdatatype.A)
                     .rrsets[0][0].to_text() for _ in range(300))
    assert set(firsts) == set(W)


@pytest.mark.parametrize("states, expected", [
    ({}, {"192.0.2.5": 0.75, "192.0.2.6": 0.25}),
    ({"w1": U}, {"192.0.2.6": 1.0}),
    ({"w3": U}, {"192.0.2.5": 1.0}),
    ({"w1": U, "w3": U}, {"192.0.2.5": 0.75, "192.0.2.6": 0.25}),   # none healthy: all
])
def test_weighted(states: dict[str, int], expected: dict[str, float]) -> None:
    table = build_answers(ZONE, lambda c: states.get(c, X), serial=1,
                          rng=random.Random(3).random)
    n = 4000
    counts: Counter[str] = Counter()
    for _ in range(n):
        rrsets = table.lookup(dns.name.from_text("img.example.test."), dns.rdatatype.A).rrsets
        assert len(rrsets) == 1 and len(rrsets[0]) == 1      # exactly one value
        counts[rrsets[0][0].to_text()] += 1
    assert set(counts) == set(expected)
    for value, share in expected.items():
        assert counts[value] / n == pytest.approx(share, abs=0.04)


def test_weighted_all_zero_weights_draws_evenly() -> None:
    zone = Zone(zone="example.test.", ttl=30, records=(
        Record(name="z.example.test.", type="A", policy="weighted",
               values=(RecordValue("192.0.2.1", None, 0), RecordValue("192.0.2.2", None, 0))),))
    table = build_answers(zone, lambda c: X, serial=1, rng=random.Random(5).random)
    got = Counter(table.lookup(dns.name.from_text("z.example.test."), dns.rdatatype.A)
                  .rrsets[0][0].to_text() for _ in range(400))
    assert set(got) == {"192.0.2.1", "192.0.2.2"}


def test_simple_ignores_health() -> None:
    assert answer_sets({"p": U}, "static.example.test.") == \
        {frozenset({"192.0.2.30", "192.0.2.31"})}


@pytest.mark.parametrize("name, rdtype, rcode, negative, aa", [
    ("example.test.", "SOA", dns.rcode.NOERROR, False, True),
    ("example.test.", "NS", dns.rcode.NOERROR, False, True),
    ("example.test.", "A", dns.rcode.NOERROR, True, True),            # NODATA at the apex
    ("api.example.test.", "AAAA", dns.rcode.NOERROR, True, True),     # NODATA
    ("ent.example.test.", "A", dns.rcode.NOERROR, True, True),        # empty non-terminal
    ("nope.example.test.", "A", dns.rcode.NXDOMAIN, True, True),
    ("a.api.example.test.", "A", dns.rcode.NXDOMAIN, True, True),
    ("example.org.", "A", dns.rcode.REFUSED, False, False),
    ("test.", "SOA", dns.rcode.REFUSED, False, False),
    ("xexample.test.", "A", dns.rcode.REFUSED, False, False),
    ("API.Example.TEST.", "A", dns.rcode.NOERROR, False, True),       # case-insensitive
])
def test_rcodes(name: str, rdtype: str, rcode: int, negative: bool, aa: bool) -> None:
    table = build_answers(ZONE, lambda c: X, serial=1)
    found = table.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    assert (found.rcode, found.negative, found.authoritative) == (rcode, negative, aa)
    assert bool(found.answer) == (rcode == dns.rcode.NOERROR and not negative)


def test_any_is_minimal_unless_full_is_asked() -> None:
    table = build_answers(ZONE, lambda c: X, serial=1)
    apex = dns.name.from_text("example.test.")
    found = table.lookup(apex, dns.rdatatype.ANY)
    assert [r.to_text() for r in found.rrsets] == ['example.test. 30 IN HINFO "RFC8482" ""']
    found = table.lookup(apex, dns.rdatatype.ANY, full_any=True)
    assert {r.rdtype for r in found.rrsets} == {dns.rdatatype.SOA, dns.rdatatype.NS}


def test_soa_and_ns_are_synthesised() -> None:
    table = build_answers(ZONE, lambda c: X, serial=1234, nameservers=["a.ns.example.", "b"])
    soa = table.lookup(dns.name.from_text("example.test."), dns.rdatatype.SOA).rrsets[0][0]
    assert soa.serial == 1234 and soa.mname.to_text() == "a.ns.example."
    assert soa.rname.to_text() == "hostmaster.example.test." and soa.minimum == 30
    ns = table.lookup(dns.name.from_text("example.test."), dns.rdatatype.NS).rrsets[0]
    assert sorted(r.target.to_text() for r in ns) == ["a.ns.example.", "b.example.test."]


def test_record_ttl_overrides_zone_ttl() -> None:
    table = build_answers(ZONE, lambda c: X, serial=1)
    assert table.lookup(dns.name.from_text("deep.ent.example.test."),
                        dns.rdatatype.A).rrsets[0].ttl == 5


def test_serial_moves_only_when_an_answer_changes() -> None:
    clock = SerialClock(wall=lambda: 1000.0)
    first = build_answers(ZONE, lambda c: X, serial=clock.serial).signature()
    assert clock.advance(first) and clock.serial == 1000
    # healthy and unknown give the same answers: no change
    assert not clock.advance(build_answers(ZONE, lambda c: H, serial=1).signature())
    same = build_answers(ZONE, lambda c: X, serial=clock.serial).signature()
    assert not clock.advance(same) and clock.serial == 1000
    changed = build_answers(ZONE, lambda c: U if c == "p" else X, serial=1).signature()
    assert clock.advance(changed) and clock.serial == 1001   # strictly increasing


def test_healthy_and_unknown_give_the_same_answers() -> None:
    a = build_answers(ZONE, lambda c: X, serial=1).signature()
    b = build_answers(ZONE, lambda c: H, serial=1).signature()
    assert a == b


def test_cache_reuses_unchanged_answers_and_rebuilds_changed_ones() -> None:
    cache = ChoiceCache()
    api, www = dns.name.from_text("api.example.test."), dns.name.from_text("www.example.test.")
    first = build_answers(ZONE, lambda c: X, serial=1, cache=cache)
    second = build_answers(ZONE, lambda c: U if c == "p" else X, serial=2, cache=cache)
    key = www.to_wire().lower()
    assert second.names[key][dns.rdatatype.A] is first.names[key][dns.rdatatype.A]
    assert second.lookup(api, dns.rdatatype.A).rrsets[0][0].to_text() == "192.0.2.20"
    third = build_answers(ZONE, lambda c: X, serial=3, cache=cache)
    assert third.lookup(api, dns.rdatatype.A).rrsets[0][0].to_text() == "192.0.2.10"
    assert len(cache.entries) == len(ZONE.records)      # only what the last build used
