"""Every probe field end to end: checks.yaml -> probe -> vote -> DNS answer.

A fleet of real processes (one checker, one aggregator, the DNS front)
probes targets served by this test: an http server that wants HEAD and an
X-Probe header and answers 204, a Redis-style PING/PONG server, a DNS
server, an http server listening on ::1 only, an https server and a TLS
gRPC server with short-lived certificates made here. Each check guards one
value of a multivalue record; making one target unhealthy in its own way
must take exactly its value out of the DNS answer, and healing it must put
the value back. The checker's metrics count the certificates expiring soon.
"""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from healthplane.deploy.launcher import Fleet, free_ports, leftover_pids

from tests.checker.dnsserver import DnsServer
from tests.checker.tlsutil import self_signed

from .conftest import DETECTION_BOUND, answers, wait_for

pytestmark = pytest.mark.e2e

VALUES = {"head": "192.0.2.1", "kv": "192.0.2.2", "ns": "192.0.2.3", "v6": "192.0.2.4",
          "tls-web": "192.0.2.5", "rpc-tls": "192.0.2.6"}
NAME = "probe.example.test"


class Targets:
    """Every target on one asyncio loop in a thread; `healthy[id]` steers each."""

    def __init__(self, directory: Path) -> None:
        self.healthy = dict.fromkeys(VALUES, True)
        self.ports: dict[str, int] = {}
        self.web_cert = self_signed(directory, days=7)
        self.rpc_cert = self_signed(directory, days=20, name="rpc.example.test")
        self.dns = DnsServer()
        self._ready = threading.Event()

    def __enter__(self) -> Targets:
        self.dns.__enter__()
        self.ports["ns"] = self.dns.port
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "targets did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        self.dns.__exit__(None, None, None)

    def set(self, target: str, healthy: bool) -> None:
        self.healthy[target] = healthy
        if target == "ns":
            self.dns.rcode = None if healthy else dns.rcode.SERVFAIL
        elif target == "rpc-tls":
            status = (health_pb2.HealthCheckResponse.SERVING if healthy
                      else health_pb2.HealthCheckResponse.NOT_SERVING)
            asyncio.run_coroutine_threadsafe(self._health.set("", status), self._loop).result(5)

    async def _http(self, target: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            if target == "head":
                wanted = head.startswith("HEAD /ping ") and "\r\nX-Probe: 1\r\n" in head
                status = (204 if self.healthy[target] else 200) if wanted else 400
            else:
                status = 200 if self.healthy[target] else 503
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _kv(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                ok = line == b"PING\r\n" and self.healthy["kv"]
                writer.write(b"+PONG\r\n" if ok else b"-LOADING\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        servers = []
        for target, host, ssl_ctx in (("head", "127.0.0.1", None), ("v6", "::1", None),
                                      ("tls-web", "127.0.0.1", self.web_cert.server_context())):
            server = await asyncio.start_server(
                lambda r, w, t=target: self._http(t, r, w), host, 0, ssl=ssl_ctx)
            servers.append(server)
            self.ports[target] = server.sockets[0].getsockname()[1]
        kv = await asyncio.start_server(self._kv, "127.0.0.1", 0)
        servers.append(kv)
        self.ports["kv"] = kv.sockets[0].getsockname()[1]
        rpc = grpc.aio.server()
        self._health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, rpc)
        creds = grpc.ssl_server_credentials([(self.rpc_cert.key_pem, self.rpc_cert.cert_pem)])
        self.ports["rpc-tls"] = rpc.add_secure_port("127.0.0.1:0", creds)
        await rpc.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await rpc.stop(None)
            for server in servers:
                server.close()


def write_configs(directory: Path, ports: dict[str, int]) -> tuple[Path, Path, Path]:
    common = "interval: 1, timeout: 0.5, failure_threshold: 2"
    checks = directory / "checks.yaml"
    checks.write_text(f"""\
checks:
  - {{id: head, type: http, host: 127.0.0.1, port: {ports['head']}, path: /ping, method: HEAD,
      headers: {{X-Probe: "1"}}, expected_status: [204], {common}}}
  - {{id: kv, type: tcp, host: 127.0.0.1, port: {ports['kv']}, send: "PING\\r\\n",
      expect: "+PONG", {common}}}
  - {{id: ns, type: dns, host: 127.0.0.1, port: {ports['ns']}, query_name: ok.example.test.,
      query_type: A, expect_rcode: NOERROR, {common}}}
  - {{id: v6, type: http, host: "::1", port: {ports['v6']}, ip_family: ipv6, {common}}}
  - {{id: tls-web, type: https, host: 127.0.0.1, port: {ports['tls-web']}, hostname: localhost,
      {common}}}
  - {{id: rpc-tls, type: grpc, host: 127.0.0.1, port: {ports['rpc-tls']}, tls: true,
      hostname: rpc.example.test, {common}}}
""")
    agg = free_ports(1, exclude=set(ports.values()))[0]
    fleet = directory / "fleet.yaml"
    fleet.write_text(
        f'regions:\n  us-east: [use1-a]\ncheckers_per_region: 1\naggregators: ["127.0.0.1:{agg}"]\n'
        "report_interval: 0.5\ntick: 0.5\nstale_after: 1.5\nunknown_as: last_known\n"
        f'canaries: ["127.0.0.1:{agg}"]\nallow_private_targets: true\n')
    values = "\n".join(f"      - {{value: {ip}, check: {cid}}}" for cid, ip in VALUES.items())
    zone = directory / "zone.yaml"
    zone.write_text(f"zone: example.test.\nttl: 5\nrecords:\n  - name: {NAME}.\n    type: A\n"
                    f"    policy: multivalue\n    values:\n{values}\n")
    return checks, fleet, zone


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Targets]]:
    directory = tmp_path_factory.mktemp("probe-fields")
    with Targets(directory) as targets:
        checks, fleet_yaml, zone = write_configs(directory, targets.ports)
        f = Fleet(checks, fleet_yaml, zone, run_dir=directory / "run", ready_timeout=60)
        with f:
            wait_for(lambda: answers(f, NAME) == set(VALUES.values()), 30,
                     what="every probe-field check healthy in DNS")
            yield f, targets
        assert leftover_pids(f.run_dir) == [], "the fleet left processes behind"


@pytest.mark.parametrize("target", list(VALUES))
def test_each_field_decides_its_dns_value(setup: tuple[Fleet, Targets], target: str) -> None:
    fleet, targets = setup
    everyone = set(VALUES.values())
    targets.set(target, False)
    try:
        wait_for(lambda: answers(fleet, NAME) == everyone - {VALUES[target]},
                 3 * DETECTION_BOUND, what=f"{target} out of the answer")
    finally:
        targets.set(target, True)
    wait_for(lambda: answers(fleet, NAME) == everyone, 3 * DETECTION_BOUND,
             what=f"{target} back in the answer")


def test_checker_counts_expiring_certificates(setup: tuple[Fleet, Targets]) -> None:
    fleet, _ = setup
    port = fleet.checker_metrics_ports["use1-a"]

    def expiring() -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        found = re.findall(rb'certificates_expiring\{within_days="(\d+)"\} (\S+)', text)
        return {k.decode(): float(v) for k, v in found}
    # tls-web's certificate expires in 7 days, rpc-tls's in 20.
    wait_for(lambda: expiring() == {"14": 1.0, "30": 2.0}, 10, what="certificates counted")
