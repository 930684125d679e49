"""The apex (SOA, NS, glue), CNAME answers, the serial and NOTIFY pacing."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
from healthplane.aggregator.dns.apex import SerialClock, read_serial, write_serial
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.notify import Notifier
from healthplane.aggregator.dns.server import DnsFront
from healthplane.proto import codec
from healthplane.proto.config.loader import parse_zone

ZONE = parse_zone("""\
zone: example.test.
ttl: 60
soa: {rname: ops.example.test., refresh: 120, retry: 30, expire: 9000, minimum: 10}
nameservers:
  - {name: ns1.example.test., address: 192.0.2.53}
  - {name: ns2.example.test., address: "2001:db8::53"}
  - {name: ns.example.net.}
records:
  - {name: www.example.test., type: CNAME, values: [{value: web.example.net.}]}
  - {name: a.example.test., type: A, values: [{value: 192.0.2.1}]}
""")


def _lookup(name: str, rdtype: str):
    table = build_answers(ZONE, lambda c: codec.UNKNOWN, serial=5)
    return table.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))


def test_soa_fields_come_from_the_zone() -> None:
    soa = _lookup("example.test.", "SOA").rrsets[0]
    assert soa.ttl == 60
    assert soa[0].to_text() == "ns1.example.test. ops.example.test. 5 120 30 9000 10"


def test_negative_answers_are_cached_for_the_soa_minimum() -> None:
    table = build_answers(ZONE, lambda c: codec.UNKNOWN, serial=5)
    q = dns.message.make_query("nothing.example.test.", "A")
    r = dns.message.from_wire(DnsFront(table).handle(q.to_wire()))
    assert r.rcode() == dns.rcode.NXDOMAIN and r.authority[0].ttl == 10


def test_ns_and_glue() -> None:
    ns = _lookup("example.test.", "NS").rrsets[0]
    assert sorted(rd.target.to_text() for rd in ns) == \
        ["ns.example.net.", "ns1.example.test.", "ns2.example.test."]
    assert [rd.to_text() for rd in _lookup("ns1.example.test.", "A").rrsets[0]] == \
        ["192.0.2.53"]
    assert [rd.to_text() for rd in _lookup("ns2.example.test.", "AAAA").rrsets[0]] == \
        ["2001:db8::53"]
    assert _lookup("ns2.example.test.", "A").negative            # NODATA, not NXDOMAIN


def test_a_cname_answers_every_type_at_its_name() -> None:
    for rdtype in ("A", "AAAA", "CNAME", "MX"):
        found = _lookup("www.example.test.", rdtype)
        assert [r.to_text() for r in found.rrsets] == \
            ["www.example.test. 60 IN CNAME web.example.net."]


def test_serial_starts_above_the_floor_and_grows_by_one(tmp_path: Path) -> None:
    seen: list[int] = []
    clock = SerialClock(wall=lambda: 1000.0, floor=5000, on_change=seen.append)
    assert clock.serial == 5001
    assert clock.advance(("a",)) and clock.serial == 5001     # the first build sets the baseline
    assert clock.advance(("b",)) and clock.advance(("c",)) and clock.serial == 5003
    assert not clock.advance(("c",))
    assert seen == [5001, 5002, 5003]
    path = str(tmp_path / "serial")
    assert read_serial(path) == 0
    write_serial(path, 5003)
    assert read_serial(path) == 5003
    assert SerialClock(wall=lambda: 1000.0, floor=read_serial(path)).serial == 5004
    assert SerialClock(wall=lambda: 9999.0, floor=5003).serial == 9999


class _Secondary(asyncio.DatagramProtocol):
    """Answers every NOTIFY, as a secondary does, and counts them."""

    def __init__(self) -> None:
        self.notifies = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        q = dns.message.from_wire(data)
        assert q.opcode() == dns.opcode.NOTIFY
        self.notifies += 1
        assert self.transport is not None
        self.transport.sendto(dns.message.make_response(q).to_wire(), addr)


async def test_a_burst_of_changes_costs_one_notify_per_interval() -> None:
    loop = asyncio.get_running_loop()
    transport, secondary = await loop.create_datagram_endpoint(
        _Secondary, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    notifier = Notifier("example.test.", [f"127.0.0.1:{port}"], min_interval=lambda: 0.5)
    task = asyncio.create_task(notifier.run())
    try:
        for _ in range(20):
            notifier.changed()
            await asyncio.sleep(0.01)         # 20 changes within 0.2 s
        await asyncio.sleep(1.0)
        assert secondary.notifies == 2       # the first at once, the rest coalesced into one
        assert notifier.stats["acked"] == 2
    finally:
        task.cancel()
        transport.close()


async def test_a_silent_secondary_never_delays_another() -> None:
    loop = asyncio.get_running_loop()
    transport, live = await loop.create_datagram_endpoint(_Secondary, local_addr=("127.0.0.1", 0))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # bound, never answers
    silent.bind(("127.0.0.1", 0))
    targets = [f"127.0.0.1:{silent.getsockname()[1]}",
               f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"]
    notifier = Notifier("example.test.", targets, min_interval=lambda: 0.1, timeout=2.0)
    task = asyncio.create_task(notifier.run())
    try:
        notifier.changed()
        async with asyncio.timeout(1.0):        # well before the silent one's first timeout
            while live.notifies < 1:
                await asyncio.sleep(0.01)
        notifier.changed()                       # a newer serial cuts the silent one's wait
        async with asyncio.timeout(1.0):
            while live.notifies < 2 or notifier.stats["sent"] < 4:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        transport.close()
        silent.close()
