"""DnsFront.handle on arbitrary bytes: never raises, answers only what it can parse."""

from __future__ import annotations

import dns.message
import dns.rcode
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.server import DnsFront
from healthplane.proto import codec
from healthplane.proto.config.model import Record, RecordValue, Zone
from hypothesis import given, settings
from hypothesis import strategies as st

ZONE = Zone(zone="example.test.", ttl=30, records=(
    Record(name="www.example.test.", type="A", policy="multivalue",
           values=(RecordValue("192.0.2.1", "a"), RecordValue("192.0.2.2", "b"))),))
FRONT = DnsFront(build_answers(ZONE, lambda c: codec.UNKNOWN, serial=1))
GOOD = dns.message.make_query("www.example.test.", "A", use_edns=0).to_wire()


def check(wire: bytes) -> None:
    errors = FRONT.stats["error"]
    out = FRONT.handle(wire)
    assert FRONT.stats["error"] == errors      # no handler exception, even swallowed
    if out is None:
        return
    assert out[:2] == wire[:2]                 # same id
    assert out[2] & 0x80                       # a response
    assert len(out) <= 1232
    r = dns.message.from_wire(out)            # and well formed
    assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED,
                         dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.BADVERS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(wire: bytes) -> None:
    check(wire)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255))
def test_one_byte_changed(pos: int, value: int) -> None:
    check(GOOD[:pos] + bytes([value]) + GOOD[pos + 1:])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(GOOD)), st.binary(max_size=40))
def test_cut_or_trailing_garbage(cut: int, tail: bytes) -> None:
    check(GOOD[:cut] + tail)
