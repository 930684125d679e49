"""The fast path gives the dnspython path's bytes exactly, or declines.

Two fronts over the same zone, with random draws seeded alike, take every
query: one with the fast path, one without. Each query goes through both,
so their draws stay in step and their responses and stats must be equal
byte for byte. Queries are written byte by byte (not by dnspython) so that
every field of the common shape varies: id, flags, the name's case, type,
EDNS payload, extended rcode and flags; then mutated, cut and extended.
"""

from __future__ import annotations

import random
import struct

import dns.name
import dns.rdatatype
import pytest
from healthplane.aggregator.dns import fastpath
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.fastpath import FAST_TYPES
from healthplane.aggregator.dns.server import DnsFront
from healthplane.proto import codec
from healthplane.proto.config.model import NameServer, Record, RecordValue, Soa, Zone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LABEL = "s" * 63
LONG = ".".join(["l" * 60] * 3) + ".example.test."      # 196 bytes of name
RECORDS = (
    Record(name="api.example.test.", type="A", policy="failover",
           primary=RecordValue("192.0.2.10", "p"), secondary=RecordValue("192.0.2.20", "s")),
    Record(name=LONG, type="A", policy="multivalue",
           values=tuple(RecordValue(f"192.0.2.{i}") for i in range(1, 9))),
    Record(name="w.example.test.", type="A", policy="multivalue",
           values=tuple(RecordValue(f"192.0.2.{i}", f"c{i % 3}") for i in range(1, 13))),
    Record(name="w.example.test.", type="AAAA", policy="weighted",
           values=tuple(RecordValue(f"2001:db8::{i}", weight=i) for i in range(0, 5))),
    Record(name="big.example.test.", type="AAAA", policy="simple",
           values=tuple(RecordValue(f"2001:db8::{i:x}") for i in range(1, 80))),
    Record(name="www.deep.under.example.test.", type="CNAME", policy="simple",
           values=(RecordValue("api.example.test."),)),
    Record(name="out.example.test.", type="CNAME", policy="simple",
           values=(RecordValue("elsewhere.example.org."),)),
)
STATES = {"p": codec.UNHEALTHY, "c1": codec.UNHEALTHY, "c2": codec.HEALTHY}
ZONES = {
    "plain": Zone(zone="example.test.", ttl=30, records=RECORDS,
                  nameservers=(NameServer("ns1.example.test.", "192.0.2.53"),
                               NameServer("ns2.example.org."))),
    # SOA names long enough that a negative answer over UDP goes TC (amplification).
    "long-soa": Zone(zone="example.test.", ttl=30, records=RECORDS, soa=Soa(
        mname=f"{LABEL}.{LABEL}.{LABEL}.m.example.test.",
        rname=f"{LABEL}.{LABEL}.{LABEL}.hostmaster.example.org.")),
}


class Pair:
    """A fast-path front and a dnspython-only front over the same answers."""

    def __init__(self, zone: Zone, max_udp: int) -> None:
        self.fast, self.slow = (
            DnsFront(build_answers(zone, lambda c: STATES.get(c, codec.UNKNOWN), serial=3,
                                   rng=random.Random(7).random),
                     max_udp=max_udp, fast_path=fast) for fast in (True, False))
        assert self.fast.fast_answers is not None and self.slow.fast_answers is None
        names = [dns.name.from_wire(k, 0)[0].to_text() for k in self.fast.table.names]
        self.names = sorted(names) + ["nothing.example.test.", "a.b.nothing.example.test.",
                                      f"{LABEL}.{LABEL}.{LABEL}.example.test."]

    def check(self, wire: bytes, tcp: bool) -> bytes | None:
        """Both fronts' answer to wire, which must agree; returns the fast path's own."""
        assert self.fast.fast_answers is not None
        own = self.fast.fast_answers.answer(wire, tcp)
        fast = own if own is not None else self.fast.handle_slow(wire, tcp=tcp)
        slow = self.slow.handle(wire, tcp=tcp)
        assert fast == slow
        assert self.fast.stats == self.slow.stats
        assert self.fast.stats["error"] == 0
        return own


PAIRS = {(zone, max_udp): Pair(ZONES[zone], max_udp)
         for zone in ZONES for max_udp in (512, 1232, 4096)}


def random_case(wire: bytes, flips: list[bool]) -> bytes:
    # Label length bytes are below 64, never letters: only label text changes.
    out = bytearray(wire)
    for i, b in enumerate(out):
        if 0x61 <= b <= 0x7A and flips[i % len(flips)]:
            out[i] = b - 0x20
    return bytes(out)


def query(qid: int, flags: int, name: bytes, qtype: int, qclass: int = 1,
          opt: tuple[int, int, int, int, bytes] | None = None, extra: bytes = b"") -> bytes:
    """A query's wire bytes; opt is (payload, extended rcode, version, flags, rdata)."""
    head = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0 if opt is None else 1)
    out = head + name + struct.pack("!HH", qtype, qclass)
    if opt is not None:
        payload, ext, version, eflags, rdata = opt
        out += b"\x00" + struct.pack("!HHBBHH", 41, payload, ext, version, eflags,
                                     len(rdata)) + rdata
    return out + extra


payloads = st.one_of(st.integers(0, 65535),
                     st.sampled_from([0, 511, 512, 513, 1231, 1232, 1233, 4096, 65535]))
opts = st.one_of(st.none(), st.tuples(payloads, st.integers(0, 255), st.just(0),
                                      st.integers(0, 0xFFFF), st.just(b"")))


@st.composite
def common(draw: st.DrawFn) -> tuple[Pair, bytes, bool]:
    """A query of the common shape, a pair of fronts to ask it and the transport."""
    pair = PAIRS[draw(st.sampled_from(sorted(PAIRS)))]
    name = dns.name.from_text(draw(st.sampled_from(pair.names))).to_wire()
    assert name is not None
    name = random_case(name, draw(st.lists(st.booleans(), min_size=1, max_size=16)))
    qtype = draw(st.sampled_from(sorted(FAST_TYPES)))
    flags = draw(st.integers(0, 0xFFFF)) & ~0xF800     # any flag but QR and the opcode
    wire = query(draw(st.integers(0, 0xFFFF)), flags, name, qtype, opt=draw(opts))
    return pair, wire, draw(st.booleans())


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(common())
def test_common_queries_take_the_fast_path_and_agree(case: tuple[Pair, bytes, bool]) -> None:
    pair, wire, tcp = case
    assert pair.check(wire, tcp) is not None


def mutate(wire: bytes, kind: int, pos: int, value: int, tail: bytes) -> bytes:
    pos %= len(wire) + 1
    if kind == 0:                                     # one byte changed
        return wire[:pos] + bytes([value]) + wire[pos + 1:]
    if kind == 1:                                     # one bit flipped
        return wire[:pos] + bytes([wire[pos] ^ (1 << value % 8)]) + wire[pos + 1:] \
            if pos < len(wire) else wire
    if kind == 2:                                     # cut short
        return wire[:pos]
    if kind == 3:                                     # trailing bytes
        return wire + tail
    if kind == 4:                                     # bytes inserted
        return wire[:pos] + tail + wire[pos:]
    return wire[:pos] + tail + wire[pos + len(tail):]  # bytes overwritten


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(common(), st.integers(0, 5), st.integers(0, 400), st.integers(0, 255),
       st.binary(min_size=1, max_size=12))
def test_mutated_queries_agree(case: tuple[Pair, bytes, bool], kind: int, pos: int, value: int,
                               tail: bytes) -> None:
    pair, wire, tcp = case
    pair.check(mutate(wire, kind, pos, value, tail), tcp)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_agree(wire: bytes, tcp: bool) -> None:
    pair = PAIRS[("plain", 1232)]
    pair.check(b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00" + wire, tcp)
    pair.check(wire, tcp)


WWW = dns.name.from_text("api.example.test.").to_wire() or b""
A, OPT0 = dns.rdatatype.A, (1232, 0, 0, 0, b"")


@pytest.mark.parametrize("wire", [
    query(1, 0x0100, WWW, dns.rdatatype.ANY),
    query(1, 0x0100, WWW, dns.rdatatype.AXFR),
    query(1, 0x0100, WWW, dns.rdatatype.IXFR),
    query(1, 0x0100, WWW, 65280),                                     # a private type
    query(1, 0x0100, WWW, dns.rdatatype.HTTPS),                       # 0x41 lower-cases
    query(1, 0x0100, WWW, dns.rdatatype.OPT),
    query(1, 0x0100, WWW, A, qclass=3),                               # CH
    query(1, 0x2000, WWW, A),                                         # opcode NOTIFY
    query(1, 0x2800, WWW, A),                                         # opcode UPDATE
    query(1, 0x8100, WWW, A),                                         # a response: dropped
    query(1, 0x0100, WWW, A, opt=(1232, 0, 1, 0, b"")),               # EDNS version 1
    query(1, 0x0100, WWW, A, opt=(1232, 0, 0, 0, b"\x00\x0a\x00\x08" + b"c" * 8)),  # cookie
    query(1, 0x0100, b"\x03www\x07example\x03org\x00", A),            # outside the zone
    query(1, 0x0100, b"\x00", A),                                     # the root
    query(1, 0x0100, b"\x03www\xc0\x0c", A),                          # a pointer in the name
    query(1, 0x0100, WWW, A)[:4] + b"\x00\x02" + query(1, 0x0100, WWW, A)[6:]
    + WWW + b"\x00\x01\x00\x01",                                      # two questions
    query(1, 0x0100, WWW, A, opt=OPT0) + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
    query(1, 0x0100, WWW, A, extra=b"\x00"),                          # trailing junk
], ids=["any", "axfr", "ixfr", "private-type", "https", "opt-type", "class-ch", "notify", "update",
        "response", "edns-v1", "edns-option", "outside", "root", "pointer", "two-questions",
        "two-opt", "trailing"])
@pytest.mark.parametrize("tcp", [False, True])
def test_uncommon_queries_are_declined_and_answered_by_dnspython(wire: bytes, tcp: bool) -> None:
    pair = PAIRS[("plain", 1232)]
    assert pair.check(wire, tcp) is None


def test_a_new_table_brings_new_answers() -> None:
    front = DnsFront(build_answers(ZONES["plain"], lambda c: codec.UNKNOWN, serial=1))
    wire = query(9, 0x0100, WWW, A)
    before = front.handle(wire)
    front.table = build_answers(ZONES["plain"], lambda c: STATES.get(c, codec.UNKNOWN),
                                serial=2)
    after = front.handle(wire)
    assert before is not None and after is not None
    assert bytes([192, 0, 2, 10]) in before and bytes([192, 0, 2, 20]) in after


def test_not_ready_goes_to_dnspython_for_servfail() -> None:
    front = DnsFront(build_answers(ZONES["plain"], lambda c: codec.UNKNOWN, serial=1),
                     ready=False)
    assert front.fast_answers is None
    out = front.handle(query(9, 0x0100, WWW, A))
    assert out is not None and out[3] & 0x0F == 2            # SERVFAIL
    front.ready = True
    assert front.fast_answers is not None


def test_disabled_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fastpath.ENV, "0")
    front = DnsFront(build_answers(ZONES["plain"], lambda c: codec.UNKNOWN, serial=1))
    assert front.fast_answers is None


def test_past_the_entry_bound_answers_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath, "MAX_ENTRIES", 2)
    pair = Pair(ZONES["plain"], 1232)
    for name in pair.names:
        wire = query(5, 0x0100, dns.name.from_text(name).to_wire() or b"", A, opt=OPT0)
        for _ in range(2):
            pair.check(wire, False)
    fast = pair.fast.fast_answers
    assert fast is not None and len(fast.entries) - fast._nx_keys == 2
