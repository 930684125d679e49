"""AXFR, IXFR and TSIG against the front over real TCP, with dnspython as the secondary."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.zone
import pytest
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.notify import notify_message
from healthplane.aggregator.dns.server import DnsFront
from healthplane.aggregator.dns.transfer import TransferPolicy
from healthplane.proto import codec
from healthplane.proto.config.loader import parse_zone

SECRET = base64.b64encode(b"k" * 32).decode()
ZONE_YAML = f"""\
zone: example.test.
ttl: 30
soa: {{mname: ns1.example.test., rname: ops.example.test., refresh: 60, retry: 10}}
nameservers:
  - {{name: ns1.example.test., address: 192.0.2.53}}
  - {{name: ns2.example.net.}}
transfer:
  allow: ["127.0.0.1/32"]
  notify: ["127.0.0.1:9"]
records:
  - name: api.example.test.
    type: A
    policy: failover
    primary:   {{value: 192.0.2.10, check: p}}
    secondary: {{value: 192.0.2.20, check: s}}
  - name: www.example.test.
    type: A
    policy: multivalue
    values: [{", ".join(f"{{value: 192.0.2.{i}, check: w{i}}}" for i in range(1, 11))}]
  - name: img.example.test.
    type: A
    policy: weighted
    values:
      - {{value: 192.0.2.5, weight: 3, check: i1}}
      - {{value: 192.0.2.6, weight: 1, check: i2}}
  - name: alias.example.test.
    type: CNAME
    values: [{{value: www.example.test.}}]
"""
STATES = {"p": codec.UNHEALTHY, "w1": codec.UNHEALTHY, "i2": codec.UNHEALTHY}


async def _front(zone_yaml: str = ZONE_YAML, serial: int = 100) -> tuple[DnsFront, int]:
    zone = parse_zone(zone_yaml)
    assert zone.transfer is not None
    table = build_answers(zone, lambda c: STATES.get(c, codec.HEALTHY), serial=serial)
    front = DnsFront(table, transfer=TransferPolicy(zone.transfer))
    return front, await front.start("127.0.0.1", 0)


@pytest.fixture
async def front() -> AsyncIterator[tuple[DnsFront, int]]:
    f, port = await _front()
    yield f, port
    await f.stop()


def _axfr(port: int, rdtype: str = "AXFR", **kw: object) -> dns.zone.Zone:
    z = dns.zone.Zone("example.test.", relativize=False)
    dns.query.inbound_xfr("127.0.0.1", z, port=port, timeout=5,
                          query=dns.message.make_query("example.test.", rdtype, **kw)
                          if rdtype == "AXFR" else None, **({} if rdtype == "AXFR" else kw))
    return z


def _values(z: dns.zone.Zone, name: str, rdtype: str) -> list[str]:
    rds = z.get_rdataset(dns.name.from_text(name, z.origin), rdtype)
    return sorted(rd.to_text() for rd in rds) if rds else []


async def test_axfr_holds_what_would_be_answered_now(front) -> None:
    _, port = front
    z = await asyncio.to_thread(_axfr, port)
    soa = z.get_rdataset(z.origin, "SOA")[0]
    assert (soa.serial, soa.mname.to_text(), soa.rname.to_text(), soa.refresh, soa.retry) == \
        (100, "ns1.example.test.", "ops.example.test.", 60, 10)
    assert _values(z, "example.test.", "NS") == ["ns1.example.test.", "ns2.example.net."]
    assert _values(z, "ns1", "A") == ["192.0.2.53"]                      # glue
    assert _values(z, "api", "A") == ["192.0.2.20"]                      # failover: chosen
    www = _values(z, "www", "A")                                          # healthy, at most 8
    assert len(www) == 8 and "192.0.2.1" not in www
    assert _values(z, "img", "A") == ["192.0.2.5"]                        # weighted: healthy
    assert _values(z, "alias", "CNAME") == ["www.example.test."]


async def test_ixfr_is_answered_axfr_style_or_with_the_soa_when_current(front) -> None:
    _, port = front

    def ixfr(serial: int) -> list[dns.message.Message]:
        q = dns.message.make_query("example.test.", "IXFR")
        q.authority.append(dns.rrset.from_text(
            "example.test.", 0, "IN", "SOA", f"a. b. {serial} 1 1 1 1"))
        return list(dns.query.xfr("127.0.0.1", "example.test.", rdtype=dns.rdatatype.IXFR,
                                  serial=serial, port=port, timeout=5))

    full = await asyncio.to_thread(ixfr, 99)
    records = [rr for m in full for rr in m.answer]
    assert records[0].rdtype == records[-1].rdtype == dns.rdatatype.SOA and len(records) > 5
    current = await asyncio.to_thread(ixfr, 100)
    assert [rr.rdtype for m in current for rr in m.answer] == [dns.rdatatype.SOA]


async def test_no_transfer_before_the_answers_come_from_real_health(front) -> None:
    f, port = front
    f.transfers_ready = False
    q = dns.message.make_query("example.test.", "AXFR")
    r = await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=3)
    assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
    assert f.stats["xfr_not_ready"] == 1


async def test_transfers_refused_off_the_acl_and_over_udp() -> None:
    front, port = await _front(ZONE_YAML.replace("127.0.0.1/32", "192.0.2.0/24"))
    try:
        q = dns.message.make_query("example.test.", "AXFR")
        r = await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=3)
        assert r.rcode() == dns.rcode.REFUSED and not r.answer
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=3)
        assert r.rcode() == dns.rcode.REFUSED
        assert front.stats["xfr_refused"] == 2
    finally:
        await front.stop()


async def test_tsig_is_required_verified_and_used_to_sign() -> None:
    yaml = ZONE_YAML.replace('  notify: ["127.0.0.1:9"]\n', '  notify: ["127.0.0.1:9"]\n'
                             f"  tsig: {{name: xfr., algorithm: hmac-sha256, secret: {SECRET}}}\n")
    front, port = await _front(yaml)
    key = dns.tsig.Key("xfr.", SECRET, "hmac-sha256")
    wrong = dns.tsig.Key("xfr.", base64.b64encode(b"x" * 32).decode(), "hmac-sha256")
    try:
        # Unsigned: refused.
        q = dns.message.make_query("example.test.", "AXFR")
        r = await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=3)
        assert r.rcode() == dns.rcode.REFUSED
        # Signed with the key: the transfer, every message signed (dnspython checks).
        z = dns.zone.Zone("example.test.", relativize=False)
        await asyncio.to_thread(dns.query.inbound_xfr, "127.0.0.1", z, port=port, timeout=5,
                                query=_signed("AXFR", key))
        assert _values(z, "api", "A") == ["192.0.2.20"]
        # A signed SOA query gets a signed answer.
        r = await dns.asyncquery.udp(_signed("SOA", key), "127.0.0.1", port=port, timeout=3)
        assert r.rcode() == dns.rcode.NOERROR and r.had_tsig and r.answer[0][0].serial == 100
        # A wrong key: NOTAUTH with the TSIG error BADSIG, and an empty MAC.
        raw = _signed("AXFR", wrong).to_wire()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(len(raw).to_bytes(2, "big") + raw)
        size = int.from_bytes(await reader.readexactly(2), "big")
        r = dns.message.from_wire(await reader.readexactly(size), keyring=False)
        writer.close()
        assert r.rcode() == dns.rcode.NOTAUTH and r.tsig[0].error == 16 and r.tsig[0].mac == b""
        assert front.stats["tsig_refused"] == 1
    finally:
        await front.stop()


def _signed(rdtype: str, key: dns.tsig.Key) -> dns.message.Message:
    q = dns.message.make_query("example.test.", rdtype)
    q.use_tsig(key)
    return q


def test_notify_message_is_a_notify() -> None:
    msg = notify_message("example.test.")
    wire = dns.message.from_wire(msg.to_wire())
    assert wire.opcode() == dns.opcode.NOTIFY and wire.flags & dns.flags.AA
    assert not wire.flags & dns.flags.RD
    assert wire.question[0].rdtype == dns.rdatatype.SOA


async def test_a_big_zone_travels_in_several_signed_messages() -> None:
    def values(i: int) -> str:
        return ", ".join(f'{{value: "2001:db8:{i:x}::{k:x}"}}' for k in range(1, 9))

    records = "".join(f"  - {{name: h{i}.example.test., type: AAAA, values: [{values(i)}]}}\n"
                      for i in range(400))
    yaml = ZONE_YAML.replace('  notify: ["127.0.0.1:9"]\n', '  notify: ["127.0.0.1:9"]\n'
                             f"  tsig: {{name: xfr., algorithm: hmac-sha256, secret: {SECRET}}}\n")
    front, port = await _front(yaml + records)
    key = dns.tsig.Key("xfr.", SECRET, "hmac-sha256")
    try:
        def transfer() -> list[dns.message.Message]:
            return list(dns.query.xfr("127.0.0.1", "example.test.", port=port, timeout=10,
                                      keyring={key.name: key}, keyname=key.name,
                                      keyalgorithm=key.algorithm))
        messages = await asyncio.to_thread(transfer)
        assert len(messages) > 3 and all(m.had_tsig for m in messages)
        rrsets = [rr for m in messages for rr in m.answer]
        assert rrsets[0].rdtype == rrsets[-1].rdtype == dns.rdatatype.SOA
        assert sum(len(rr) for rr in rrsets if rr.rdtype == dns.rdatatype.AAAA) == 400 * 8
    finally:
        await front.stop()
