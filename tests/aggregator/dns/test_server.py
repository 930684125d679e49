"""The DNS front over real UDP and TCP sockets on loopback, queried with dnspython."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.asyncresolver
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest
from healthplane.aggregator.dns import udp as udp_loop
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.server import DnsFront
from healthplane.proto import codec
from healthplane.proto.config.model import Record, RecordValue, Soa, Zone

from tests.aggregator.dns.test_consumer import until

LONG = ".".join(["l" * 60] * 3) + ".example.test."      # 196 bytes of name
ZONE = Zone(zone="example.test.", ttl=30, records=(
    Record(name="api.example.test.", type="A", policy="failover",
           primary=RecordValue("192.0.2.10", "p"), secondary=RecordValue("192.0.2.20", "s")),
    Record(name=LONG, type="A", policy="multivalue",
           values=tuple(RecordValue(f"192.0.2.{i}") for i in range(1, 9))),
    Record(name=LONG, type="AAAA", policy="multivalue",
           values=tuple(RecordValue(f"2001:db8::{i}") for i in range(1, 9))),
    Record(name="w.example.test.", type="A", policy="multivalue",
           values=tuple(RecordValue(f"192.0.2.{i}") for i in range(1, 9))),
    Record(name="w.example.test.", type="AAAA", policy="multivalue",
           values=tuple(RecordValue(f"2001:db8::{i}") for i in range(1, 9))),
    Record(name="big.example.test.", type="AAAA", policy="simple",
           values=tuple(RecordValue(f"2001:db8::{i:x}") for i in range(1, 31))),
))
STATES = {"p": codec.UNHEALTHY}


@pytest.fixture(params=["compiled", "python", "dnspython"])
async def server(request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[DnsFront, int]]:
    """The front on each query path: the fast path with the C UDP loop, the fast
    path on asyncio's datagram protocol, and dnspython for every query."""
    if request.param == "compiled" and udp_loop.NATIVE is None:
        pytest.skip("_fastdns not built or forced off")
    if request.param == "python":
        monkeypatch.setattr(udp_loop, "NATIVE", None)
    front = DnsFront(build_answers(ZONE, lambda c: STATES.get(c, codec.UNKNOWN), serial=7),
                     tcp_idle_timeout=0.5, max_tcp_connections=4,
                     fast_path=request.param != "dnspython")
    port = await front.start("127.0.0.1", 0)
    yield front, port
    await front.stop()


async def udp(port: int, q: dns.message.Message) -> dns.message.Message:
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=3)


async def tcp(port: int, q: dns.message.Message) -> dns.message.Message:
    return await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=3)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("name, rdtype, rcode, answers, soa_authority, aa", [
    ("api.example.test.", "A", dns.rcode.NOERROR, ["192.0.2.20"], False, True),
    ("API.EXAMPLE.test.", "A", dns.rcode.NOERROR, ["192.0.2.20"], False, True),
    ("api.example.test.", "AAAA", dns.rcode.NOERROR, [], True, True),       # NODATA
    ("nothing.example.test.", "A", dns.rcode.NXDOMAIN, [], True, True),
    ("example.test.", "SOA", dns.rcode.NOERROR, ["SOA"], False, True),
    ("example.test.", "NS", dns.rcode.NOERROR, ["ns1.example.test."], False, True),
    ("www.example.org.", "A", dns.rcode.REFUSED, [], False, False),
    ("example.test.", "AXFR", dns.rcode.REFUSED, [], False, False),
])
async def test_rcodes(server: tuple[DnsFront, int], transport: str, name: str, rdtype: str,
                      rcode: int, answers: list[str], soa_authority: bool, aa: bool) -> None:
    _, port = server
    q = dns.message.make_query(name, rdtype)
    r = await (udp if transport == "udp" else tcp)(port, q)
    assert r.rcode() == rcode
    assert bool(r.flags & dns.flags.AA) == aa
    assert r.question[0].name.to_text() == name          # the client's case echoed
    got = [rd.to_text() for rrset in r.answer for rd in rrset]
    if answers == ["SOA"]:
        assert len(got) == 1 and got[0].startswith("ns1.example.test. hostmaster.example.test. 7 ")
    else:
        assert got == answers
    assert [a.rdtype for a in r.authority] == ([dns.rdatatype.SOA] if soa_authority else [])
    if soa_authority:
        assert r.authority[0].name.to_text() == "example.test."


async def test_stub_resolver_gets_answers(server: tuple[DnsFront, int]) -> None:
    _, port = server
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers, res.port = ["127.0.0.1"], port
    ans = await res.resolve("api.example.test.", "A")
    assert [a.address for a in ans] == ["192.0.2.20"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        await res.resolve("gone.example.test.", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        await res.resolve("api.example.test.", "AAAA")


async def test_edns_is_answered_with_edns(server: tuple[DnsFront, int]) -> None:
    _, port = server
    r = await udp(port, dns.message.make_query("api.example.test.", "A", use_edns=0, payload=4096))
    assert r.edns == 0 and r.payload == 1232
    r = await udp(port, dns.message.make_query("api.example.test.", "A"))
    assert r.edns == -1


async def test_large_answer_truncates_over_udp_and_completes_over_tcp(
        server: tuple[DnsFront, int]) -> None:
    front, port = server
    # 30 AAAA do not fit 512 bytes (no EDNS) ...
    big = "big.example.test."
    q = dns.message.make_query(big, "AAAA")
    r = await udp(port, q)
    assert r.flags & dns.flags.TC and not r.answer
    # ... nor a small EDNS size (below 512 counts as 512) ...
    r = await udp(port, dns.message.make_query(big, "AAAA", use_edns=0, payload=300))
    assert r.flags & dns.flags.TC and not r.answer and r.edns == 0
    # ... but fit the client's larger EDNS size, and TCP always.
    r = await udp(port, dns.message.make_query(big, "AAAA", use_edns=0, payload=1232))
    assert not r.flags & dns.flags.TC and sum(len(a) for a in r.answer) == 30
    r = await tcp(port, q)
    assert not r.flags & dns.flags.TC and sum(len(a) for a in r.answer) == 30
    assert front.stats["truncated"] == 2
    # dnspython falls back to TCP by itself on TC.
    r, used_tcp = await dns.asyncquery.udp_with_fallback(q, "127.0.0.1", port=port, timeout=3)
    assert used_tcp and sum(len(a) for a in r.answer) == 30


@pytest.mark.parametrize("name", [LONG, "w.example.test."])
async def test_any_over_udp_amplifies_at_most_four_times(server: tuple[DnsFront, int],
                                                        name: str) -> None:
    """RFC 8482: a name with 8 A + 8 AAAA values answers ANY with one HINFO."""
    front, port = server
    for edns in (-1, 0):
        q = dns.message.make_query(name, "ANY", use_edns=edns)
        query = q.to_wire()
        response = await asyncio.to_thread(_raw_udp, port, query, 3)
        assert response is not None
        assert len(response) / len(query) <= 4, (len(response), len(query))
        r = dns.message.from_wire(response)
        assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.HINFO]
    # Over TCP the source address is proven: every RRset.
    r = await tcp(port, dns.message.make_query(LONG, "ANY"))
    assert sum(len(a) for a in r.answer) == 16


async def test_resolver_falls_back_to_tcp_for_a_big_rrset(server: tuple[DnsFront, int]) -> None:
    _, port = server
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers, res.port = ["127.0.0.1"], port
    res.use_edns(-1)                         # 512 bytes: 30 AAAA records do not fit
    ans = await res.resolve("big.example.test.", "AAAA")
    assert len(ans) == 30


def _raw_udp(port: int, payload: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


@pytest.mark.parametrize("payload, expect", [
    (b"", "drop"),
    (b"\x12", "drop"),
    (b"\x12\x34\x01\x00\x00\x01", "drop"),                       # truncated header
    (b"\x12\x34\x81\x80" + b"\x00" * 8, "drop"),                  # a response (QR set)
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", "formerr"),   # question missing
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03api\x07exam", "formerr"),
    (b"\x12\x34\x01\x00" + bytes(range(256)) * 4, "formerr"),     # garbage after a header
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff" * 65000, "formerr"),
])
async def test_malformed_and_oversized_queries(server: tuple[DnsFront, int], payload: bytes,
                                               expect: str) -> None:
    front, port = server
    got = await asyncio.to_thread(_raw_udp, port, payload, 0.3 if expect == "drop" else 3)
    if expect == "drop":
        assert got is None
    else:
        assert got is not None and len(got) == 12
        qid, flags = struct.unpack_from("!HH", got)
        assert qid == 0x1234 and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
    # and the server keeps serving
    r = await udp(port, dns.message.make_query("api.example.test.", "A"))
    assert r.rcode() == dns.rcode.NOERROR
    assert front.stats["error"] == 0


async def test_two_questions_and_other_opcodes(server: tuple[DnsFront, int]) -> None:
    _, port = server
    q = dns.message.make_query("api.example.test.", "A")
    q.question.append(dns.message.make_query("example.test.", "SOA").question[0])
    assert (await udp(port, q)).rcode() == dns.rcode.FORMERR
    n = dns.message.make_query("api.example.test.", "A")
    n.set_opcode(dns.opcode.NOTIFY)
    assert (await udp(port, n)).rcode() == dns.rcode.NOTIMP
    v = dns.message.make_query("api.example.test.", "A", use_edns=1)
    assert (await udp(port, v)).rcode() == dns.rcode.BADVERS
    c = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    assert (await udp(port, c)).rcode() == dns.rcode.REFUSED


async def test_tcp_garbage_and_pipelining(server: tuple[DnsFront, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    q1 = dns.message.make_query("api.example.test.", "A")
    q2 = dns.message.make_query("nothing.example.test.", "A")
    for q in (q1, q2):      # two queries back to back on one connection
        w = q.to_wire()
        writer.write(len(w).to_bytes(2, "big") + w)
    for q, rcode in ((q1, dns.rcode.NOERROR), (q2, dns.rcode.NXDOMAIN)):
        size = int.from_bytes(await reader.readexactly(2), "big")
        r = dns.message.from_wire(await reader.readexactly(size))
        assert r.id == q.id and r.rcode() == rcode
    garbage = b"\x01\x02\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff"   # question cut off
    writer.write(len(garbage).to_bytes(2, "big") + garbage)
    size = int.from_bytes(await reader.readexactly(2), "big")
    assert (await reader.readexactly(size))[3] & 0xF == dns.rcode.FORMERR
    # shorter than a header: dropped, and the connection with it
    writer.write(b"\x00\x03abc")
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()


async def test_tcp_idle_timeout_and_connection_bound(server: tuple[DnsFront, int]) -> None:
    front, port = server
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(6)]
    # Wait for the server to accept all six (on a loaded machine that can take
    # longer than any fixed sleep), well inside the 0.5 s idle timeout: the
    # fifth and sixth take the slots of the two quiet the longest.
    await until(lambda: front.stats["tcp_evicted"] == 2)
    assert front.tcp_active == 4
    # idle ones are closed after the timeout (0.5 s here)
    for reader, _ in conns:
        assert await asyncio.wait_for(reader.read(), 3) == b""
    assert front.tcp_active == 0
    # a half-sent message counts as idle too
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x00\x40\x12")
    assert await asyncio.wait_for(reader.read(), 3) == b""
    r = await tcp(port, dns.message.make_query("api.example.test.", "A"))
    assert r.rcode() == dns.rcode.NOERROR


async def test_table_swap_changes_answers(server: tuple[DnsFront, int]) -> None:
    front, port = server
    front.table = build_answers(ZONE, lambda c: codec.HEALTHY, serial=8)
    r = await udp(port, dns.message.make_query("api.example.test.", "A"))
    assert [rd.to_text() for rd in r.answer[0]] == ["192.0.2.10"]


async def test_tcp_pipelined_burst_is_answered_in_order(server: tuple[DnsFront, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    queries = []
    for i in range(200):
        q = dns.message.make_query("api.example.test." if i % 2 else "x.example.test.", "A")
        q.id = i
        w = q.to_wire()
        queries.append(len(w).to_bytes(2, "big") + w)
    writer.write(b"".join(queries))          # one burst, many batches for the server
    for i in range(200):
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
        r = dns.message.from_wire(await reader.readexactly(size))
        assert r.id == i
        assert r.rcode() == (dns.rcode.NOERROR if i % 2 else dns.rcode.NXDOMAIN)
    writer.close()


async def test_tcp_client_that_never_reads_does_not_stall_others(
        server: tuple[DnsFront, int]) -> None:
    front, port = server
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    w = dns.message.make_query(LONG, "ANY").to_wire()     # big answers fill buffers fast
    frame = len(w).to_bytes(2, "big") + w
    for _ in range(40):                    # ~1.2 MB of queries, never reading an answer
        writer.write(frame * 100)
        try:
            await asyncio.wait_for(writer.drain(), 0.05)
        except TimeoutError:
            break                          # the server stopped reading from us: good
        except ConnectionError:
            # Also good: on a loaded machine the idle timeout (0.5 s here) can
            # pass before the drain times out, and the server hangs up on us.
            break
    r = await udp(port, dns.message.make_query("api.example.test.", "A"))
    assert r.rcode() == dns.rcode.NOERROR
    writer.transport.abort()
    assert front.stats["error"] == 0


async def test_serves_on_ipv6_loopback() -> None:
    front = DnsFront(build_answers(ZONE, lambda c: codec.UNKNOWN, serial=1))
    try:
        port = await front.start("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        r = await dns.asyncquery.udp(dns.message.make_query("api.example.test.", "A"),
                                     "::1", port=port, timeout=3)
        assert [rd.to_text() for rd in r.answer[0]] == ["192.0.2.10"]
        r = await dns.asyncquery.tcp(dns.message.make_query("api.example.test.", "A"),
                                     "::1", port=port, timeout=3)
        assert r.rcode() == dns.rcode.NOERROR
    finally:
        await front.stop()


LABEL = "s" * 63
LONG_SOA = Zone(zone="example.test.", ttl=30, records=ZONE.records, soa=Soa(
    mname=f"{LABEL}.{LABEL}.{LABEL}.m.example.test.",
    rname=f"{LABEL}.{LABEL}.{LABEL}.hostmaster.example.org."))


@pytest.mark.parametrize("zone", [ZONE, LONG_SOA], ids=["default-soa", "long-soa"])
@pytest.mark.parametrize("name, rdtype", [
    ("x.example.test.", "A"), ("x.example.test.", "ANY"),          # NXDOMAIN
    ("api.example.test.", "TXT"), ("example.test.", "A"),          # NODATA
    ("w.example.test.", "ANY"), ("example.test.", "ANY")])
async def test_negative_and_any_answers_amplify_at_most_four_times(
        zone: Zone, name: str, rdtype: str) -> None:
    """The authority SOA of a negative answer has its names compressed, and a
    negative answer still over four times the query goes TC (the client's TCP
    retry gets it), whatever SOA names the operator chose."""
    front = DnsFront(build_answers(zone, lambda c: codec.UNKNOWN, serial=7))
    port = await front.start("127.0.0.1", 0)
    try:
        for edns in (-1, 0):
            query = dns.message.make_query(name, rdtype, use_edns=edns, payload=4096).to_wire()
            response = await asyncio.to_thread(_raw_udp, port, query, 3)
            assert response is not None
            assert len(response) <= 4 * len(query), (len(response), len(query))
            r = dns.message.from_wire(response)
            if zone is ZONE:                     # fits: a full answer, SOA compressed
                assert not r.flags & dns.flags.TC
                if r.rcode() == dns.rcode.NXDOMAIN or not r.answer:
                    assert len(response) <= 3 * len(query)
                    assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]
        r = await tcp(port, dns.message.make_query(name, rdtype))
        assert not r.flags & dns.flags.TC
        if r.rcode() == dns.rcode.NXDOMAIN or not r.answer:
            assert r.authority[0][0].mname.to_text() == (zone.soa.mname or "ns1.example.test.")
    finally:
        await front.stop()
