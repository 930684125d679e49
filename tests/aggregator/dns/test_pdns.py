"""``healthplane pdns-backend``: the protocol, and a real pdns_server in front of it.

The integration test runs PowerDNS 4.7 with its packet cache and query
caches off (``cache-ttl=0``, ``query-cache-ttl=0``, ``negquery-cache-ttl=0``),
so a failover is visible through it as soon as the backend has the snapshot;
with them on, a failover can take up to one record TTL longer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.pdns_backend import MAX_REQUEST, RemoteBackend
from healthplane.proto import codec
from healthplane.proto.config.loader import parse_zone

from tests.aggregator.dns import secondaries as sec
from tests.aggregator.dns.fakes import FakeHealth
from tests.aggregator.dns.front_proc import running
from tests.aggregator.dns.test_cli import scrape
from tests.aggregator.dns.test_transfer import ZONE_YAML

FAILOVER_BOUND = 5.0


def _backend(states: dict[str, int] | None = None) -> RemoteBackend:
    zone = parse_zone(ZONE_YAML)
    table = build_answers(zone, lambda c: (states or {}).get(c, codec.HEALTHY), serial=42)
    return RemoteBackend(lambda: table)


def _call(backend: RemoteBackend, method: str, **params: object) -> object:
    line = json.dumps({"method": method, "parameters": params}).encode()
    return json.loads(backend.reply(line))["result"]


def test_lookup_follows_the_answer_rules() -> None:
    b = _backend({"p": codec.UNHEALTHY})
    assert _call(b, "initialize", path="/x", timeout="2000") is True
    got = _call(b, "lookup", qtype="ANY", qname="API.example.test.", **{"zone-id": 1})
    assert got == [{"qtype": "A", "qname": "API.example.test.", "content": "192.0.2.20",
                    "ttl": 30, "auth": True}]
    soa = _call(b, "lookup", qtype="SOA", qname="example.test.", **{"zone-id": -1})
    assert soa[0]["content"].split()[2] == "42"
    assert _call(b, "lookup", qtype="ANY", qname="nope.example.test.") is False
    assert _call(b, "lookup", qtype="A", qname="www.example.org.") is False
    www = _call(b, "lookup", qtype="A", qname="www.example.test.")
    assert len(www) == 8
    cname = _call(b, "lookup", qtype="ANY", qname="alias.example.test.")
    assert [r["qtype"] for r in cname] == ["CNAME"]


def test_domains_metadata_and_the_rest() -> None:
    b = _backend()
    domains = _call(b, "getAllDomains", include_disabled=True)
    assert domains == [{"id": 1, "zone": "example.test.", "kind": "native", "serial": 42,
                        "notified_serial": 42, "last_check": 0, "masters": []}]
    assert _call(b, "getDomainInfo", name="example.test.")["serial"] == 42
    assert _call(b, "getAllDomainMetadata", name="example.test.") is False
    assert _call(b, "getDomainMetadata", name="example.test.", kind="PRESIGNED") is False
    assert _call(b, "feedRecord", rr={}) is False
    listed = _call(b, "list", zonename="example.test.", domain_id=1)
    assert listed[0]["qtype"] == "SOA" and any(r["qname"] == "api.example.test." for r in listed)


def test_malformed_requests_are_answered_false_and_counted() -> None:
    b = _backend()
    for line in (b"{", b"[]", b'"x"', b'{"method": 3}', b'{"method": "lookup"}',
                 b'{"method": "lookup", "parameters": {"qname": "a..b", "qtype": "A"}}',
                 b'{"method": "lookup", "parameters": {"qname": "a.", "qtype": "NOPE"}}',
                 b"[" * 100_000, "é".encode("latin-1")):
        assert b.reply(line) == b'{"result":false}\n'
    assert b.stats["malformed"] == 9


async def test_socket_bounds_request_size(tmp_path: Path) -> None:
    fake = FakeHealth(["p", "s"])
    await fake.start()
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML)
    sock = str(tmp_path / "pdns.sock")
    try:
        async with running("pdns-backend", "--zone", str(zone), "--aggregator", fake.address,
                           "--socket", sock, ready=r"listening on unix:",
                           metrics=True) as backend:
            reader, writer = await asyncio.open_unix_connection(sock)
            writer.write(b'{"method":"initialize","parameters":{}}\n{"bad\n')
            assert await reader.readline() == b'{"result":true}\n'
            assert await reader.readline() == b'{"result":false}\n'
            writer.write(b"x" * (MAX_REQUEST + 10))
            assert await asyncio.wait_for(reader.read(), 5) == b""      # closed, not buffered
            writer.close()
            reader, writer = await asyncio.open_unix_connection(sock)   # still serving
            writer.write(b'{"method":"getAllDomains","parameters":{}}\n')
            assert b"example.test." in await reader.readline()
            writer.close()
            text = await asyncio.to_thread(scrape, backend.mport)
            assert 'healthplane_pdns_events_total{event="malformed"} 1.0' in text
            assert 'healthplane_pdns_events_total{event="oversized"} 1.0' in text
            assert 'healthplane_pdns_requests_total{method="getAllDomains"} 1.0' in text
        assert "Traceback" not in backend.log()
    finally:
        await fake.stop()


def _pdns(directory: Path, sock: str, port: int, packet_cache: bool = False) -> sec.Server:
    binary = sec.need("pdns_server")
    ttl = 20 if packet_cache else 0
    (directory / "pdns.conf").write_text(f"""\
launch=remote
remote-connection-string=unix:path={sock},timeout=2000
local-address=127.0.0.1
local-port={port}
socket-dir={directory}
daemon=no
guardian=no
write-pid=no
disable-syslog=yes
loglevel=4
cache-ttl={ttl}
query-cache-ttl={ttl}
negquery-cache-ttl={ttl}
""")
    log = directory / "pdns.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, f"--config-dir={directory}"], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return sec.Server("pdns_server", port, proc, log)


async def test_pdns_server_follows_a_failover(tmp_path: Path) -> None:
    sec.need("pdns_server")
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML + "  - {name: deep.ent.example.test., type: A, "
                    "values: [{value: 192.0.2.77}]}\n")
    fake = FakeHealth(["p", "s"])
    await fake.start()
    sock = str(tmp_path / "pdns.sock")
    server: sec.Server | None = None
    try:
        async with running("pdns-backend", "--zone", str(zone), "--aggregator", fake.address,
                           "--socket", sock, "--tick", "0.1", ready=r"listening on unix:"):
            server = _pdns(tmp_path, sock, sec.free_port())
            await asyncio.to_thread(sec.wait_until, lambda: sec.dig(
                server.port, "api.example.test.") == ["192.0.2.10"], 30, "pdns answering",
                server)
            soa = await asyncio.to_thread(sec.dig, server.port, "example.test.", "SOA")
            assert soa is not None and {"ns1.example.test.", "ops.example.test."} <= set(soa)
            r = await dns.asyncquery.udp(dns.message.make_query("nope.example.test.", "A"),
                                         "127.0.0.1", port=server.port, timeout=3)
            assert r.rcode() == dns.rcode.NXDOMAIN
            # An empty non-terminal is NODATA, not NXDOMAIN (RFC 8020).
            r = await dns.asyncquery.udp(dns.message.make_query("ent.example.test.", "A"),
                                         "127.0.0.1", port=server.port, timeout=3)
            assert r.rcode() == dns.rcode.NOERROR and not r.answer, r
            r = await dns.asyncquery.udp(dns.message.make_query("deep.ent.example.test.", "A"),
                                         "127.0.0.1", port=server.port, timeout=3)
            assert [rd.to_text() for rr in r.answer for rd in rr] == ["192.0.2.77"]
            fake.set(p=codec.UNHEALTHY)
            died = time.monotonic()
            await asyncio.to_thread(sec.wait_until, lambda: sec.dig(
                server.port, "api.example.test.") == ["192.0.2.20"], FAILOVER_BOUND,
                "the failover through pdns", server)
            print(f"pdns (caches off): failover visible after {time.monotonic() - died:.2f}s")
    finally:
        if server is not None and server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(10)
        await fake.stop()


def test_bad_flags_and_files_give_one_line(tmp_path: Path) -> None:
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML.replace("policy: weighted", "policy: latency"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "healthplane", "pdns-backend", *args],
                              capture_output=True, text=True, timeout=30)

    r = run("--zone", str(zone), "--aggregator", "127.0.0.1:1", "--socket", "/x" * 60)
    assert r.returncode == 2 and "--socket" in r.stderr and r.stderr.count("\n") == 1
    r = run("--zone", str(zone), "--aggregator", "127.0.0.1:1", "--socket", str(tmp_path / "s"))
    assert r.returncode == 1 and "zone.yaml:" in r.stderr and "policy" in r.stderr
    assert "Traceback" not in r.stderr


async def test_a_live_socket_is_never_taken_over_and_a_stale_one_is_replaced(
        tmp_path: Path) -> None:
    """A second backend on the same path (a restart that overlaps, a typo) must
    not unlink a running backend's socket: PowerDNS would lose it silently."""
    import errno
    import socket

    from healthplane.aggregator.dns.pdns_backend import serve_unix

    path = str(tmp_path / "pdns.sock")
    first = await serve_unix(_backend(), path)
    try:
        try:
            await serve_unix(_backend(), path)
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE
        else:
            raise AssertionError("a second backend took a live socket over")
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b'{"method":"initialize","parameters":{}}\n')
        assert await reader.readline() == b'{"result":true}\n'
        writer.close()
    finally:
        first.close()
        await first.wait_closed()
    stale = socket.socket(socket.AF_UNIX)            # bound, never listening: stale
    if os.path.exists(path):                         # asyncio leaves it before 3.13
        os.unlink(path)
    stale.bind(path)
    stale.close()
    server = await serve_unix(_backend(), path)
    server.close()
    await server.wait_closed()


async def test_pdns_server_answers_again_after_a_backend_restart(tmp_path: Path) -> None:
    """pdns_server keeps running while the backend restarts (an upgrade, a
    crash): it reconnects to the new one, which answers from a fresh snapshot."""
    sec.need("pdns_server")
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML)
    fake = FakeHealth(["p", "s"])
    await fake.start()
    sock = str(tmp_path / "pdns.sock")
    server: sec.Server | None = None
    args = ("--zone", str(zone), "--aggregator", fake.address, "--socket", sock,
            "--tick", "0.1")
    try:
        async with running("pdns-backend", *args, ready=r"listening on unix:"):
            server = _pdns(tmp_path, sock, sec.free_port())
            await asyncio.to_thread(sec.wait_until, lambda: sec.dig(
                server.port, "api.example.test.") == ["192.0.2.10"], 30, "pdns answering",
                server)
        # The backend is gone: pdns answers SERVFAIL (no answer for dig +short).
        assert await asyncio.to_thread(sec.dig, server.port, "api.example.test.") != \
            ["192.0.2.10"]
        fake.set(p=codec.UNHEALTHY)
        async with running("pdns-backend", *args, ready=r"listening on unix:"):
            await asyncio.to_thread(sec.wait_until, lambda: sec.dig(
                server.port, "api.example.test.") == ["192.0.2.20"], FAILOVER_BOUND,
                "pdns answering through the restarted backend", server)
        assert server.proc.poll() is None
    finally:
        if server is not None and server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(10)
        await fake.stop()
