"""The DNS front as a hidden primary for real Knot, NSD and BIND secondaries.

Each test starts the front (``healthplane dns`` as a process, fed by a real
gRPC Health server), then the secondary from Debian's package on loopback
ports; ``dig`` at the secondary must show a failover within the detection
bound plus the transfer time. Detection here is one tick of the fake
aggregator (0.1 s), so the bound is dominated by NOTIFY, the SOA check and
the transfer: ``FAILOVER_BOUND`` seconds, generous for a loaded machine.

The last test runs a real fleet instead (probe targets, checkers, an
aggregator and the front) with all three secondaries behind the front, takes
the primary endpoint down and wants the failover at every secondary within
the detection bound plus the transfer time (``REAL_BOUND``).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from healthplane.deploy.launcher import Fleet, TargetsOptions, free_ports
from healthplane.proto import codec

from tests.aggregator.dns import secondaries as sec
from tests.aggregator.dns.fakes import FakeHealth
from tests.aggregator.dns.front_proc import running

FAILOVER_BOUND = 10.0
ZONE = "example.test."
SECRET = base64.b64encode(b"healthplane-test-key-32-bytes!!!").decode()


def zone_yaml(notify_port: int, tsig: bool = False) -> str:
    key = (f"  tsig: {{name: xfr-key., algorithm: hmac-sha256, secret: {SECRET}}}\n"
           if tsig else "")
    return f"""\
zone: {ZONE}
ttl: 5
soa: {{refresh: 3600, retry: 5, minimum: 5}}
nameservers:
  - {{name: ns1.example.test., address: 192.0.2.53}}
transfer:
  allow: ["127.0.0.1/32"]
  notify: ["127.0.0.1:{notify_port}"]
{key}records:
  - name: api.example.test.
    type: A
    policy: failover
    primary:   {{value: 192.0.2.10, check: api-primary}}
    secondary: {{value: 192.0.2.20, check: api-secondary}}
"""


async def _failover_through(tmp_path: Path, start: Callable[[Path, int], sec.Server],
                            notify_port: int, tsig: bool = False) -> float:
    zone = tmp_path / "zone.yaml"
    zone.write_text(zone_yaml(notify_port, tsig))
    fake = FakeHealth(["api-primary", "api-secondary"])
    await fake.start()
    server: sec.Server | None = None
    try:
        async with running("dns", "--zone", str(zone), "--aggregator", fake.address,
                           "--listen", "127.0.0.1:0", "--tick", "0.1") as front:
            workdir = tmp_path / "secondary"
            workdir.mkdir()
            server = start(workdir, front.port)
            await asyncio.to_thread(
                sec.wait_until, lambda: sec.dig(server.port, "api.example.test.") ==
                ["192.0.2.10"], 30, "the first transfer", server)
            fake.set(api_primary=codec.UNHEALTHY, api_secondary=codec.HEALTHY)
            died = time.monotonic()
            await asyncio.to_thread(
                sec.wait_until, lambda: sec.dig(server.port, "api.example.test.") ==
                ["192.0.2.20"], FAILOVER_BOUND, "the failover at the secondary", server)
            took = time.monotonic() - died
            assert "Traceback" not in front.log()
            return took
    finally:
        if server is not None:
            server.stop()
        await fake.stop()


@pytest.fixture
def port() -> int:
    return sec.free_port()


def _on(factory: Callable[..., sec.Server], port: int,
        **kw: object) -> Callable[[Path, int], sec.Server]:
    """Start the secondary on ``port``, the one the front already NOTIFYs."""
    return lambda directory, primary: factory(directory, ZONE, primary, port, **kw)


async def test_knot_follows_a_failover(tmp_path: Path, port: int) -> None:
    sec.need("knotd")
    took = await _failover_through(tmp_path, _on(sec.knot, port), port)
    print(f"knot: failover visible after {took:.2f}s")


async def test_knot_with_tsig_follows_a_failover(tmp_path: Path, port: int) -> None:
    sec.need("knotd")
    key = sec.Key("xfr-key.", "hmac-sha256", SECRET)
    took = await _failover_through(tmp_path, _on(sec.knot, port, key=key), port,
                                   tsig=True)
    print(f"knot+tsig: failover visible after {took:.2f}s")


async def test_nsd_follows_a_failover(tmp_path: Path, port: int) -> None:
    sec.need("nsd")
    took = await _failover_through(tmp_path, _on(sec.nsd, port), port)
    print(f"nsd: failover visible after {took:.2f}s")


async def test_nsd_with_tsig_follows_a_failover(tmp_path: Path, port: int) -> None:
    sec.need("nsd")
    key = sec.Key("xfr-key.", "hmac-sha256", SECRET)
    took = await _failover_through(tmp_path, _on(sec.nsd, port, key=key), port, tsig=True)
    print(f"nsd+tsig: failover visible after {took:.2f}s")


async def test_bind_follows_a_failover(tmp_path: Path, port: int) -> None:
    sec.need("named")
    took = await _failover_through(tmp_path, _on(sec.bind, port), port)
    print(f"bind: failover visible after {took:.2f}s")


async def test_bind_with_tsig_follows_a_failover(tmp_path: Path, port: int) -> None:
    sec.need("named")
    key = sec.Key("xfr-key.", "hmac-sha256", SECRET)
    took = await _failover_through(tmp_path, _on(sec.bind, port, key=key), port, tsig=True)
    print(f"bind+tsig: failover visible after {took:.2f}s")


INTERVAL, THRESHOLD, REPORT, TICK = 1.0, 2, 0.5, 0.5
# Detection (interval x threshold + report + tick + 1 s) plus NOTIFY, SOA check and transfer.
REAL_BOUND = INTERVAL * THRESHOLD + REPORT + TICK + 1.0 + 3.0


def _real_fleet_configs(d: Path, control: int, notify: list[int]) -> tuple[Path, Path, Path]:
    primary, secondary, aggregator = free_ports(3, exclude={control, *notify})
    checks = d / "checks.yaml"
    checks.write_text("checks:\n" + "".join(
        f"  - {{id: {cid}, type: http, host: 127.0.0.1, port: {port}, path: /health, "
        f"interval: {INTERVAL}, timeout: 0.5, failure_threshold: {THRESHOLD}}}\n"
        for cid, port in (("api-primary", primary), ("api-secondary", secondary))))
    fleet = d / "fleet.yaml"
    fleet.write_text(
        "regions:\n  us-east: [use1-a]\n  eu-west: [euw1-a]\ncheckers_per_region: 1\n"
        f'aggregators: ["127.0.0.1:{aggregator}"]\nreport_interval: {REPORT}\ntick: {TICK}\n'
        f'stale_after: 1.5\nallow_private_targets: true\ncanaries: ["127.0.0.1:{control}"]\n')
    zone = d / "zone.yaml"
    zone.write_text(zone_yaml(notify[0]).replace(
        f'notify: ["127.0.0.1:{notify[0]}"]',
        "notify: [" + ", ".join(f'"127.0.0.1:{p}"' for p in notify) + "]"))
    return checks, fleet, zone


def test_every_secondary_follows_a_real_endpoint_death(tmp_path: Path) -> None:
    """A real fleet (targets, checkers, aggregator, front); Knot, NSD and BIND behind it."""
    for binary in ("knotd", "nsd", "named"):
        sec.need(binary)
    factories = [("knot", sec.knot), ("nsd", sec.nsd), ("bind", sec.bind)]
    control = free_ports(1)[0]
    ports = [sec.free_port() for _ in factories]
    checks, fleet_yaml, zone = _real_fleet_configs(tmp_path, control, ports)
    servers: list[sec.Server] = []
    with Fleet(checks, fleet_yaml, zone, run_dir=tmp_path / "run",
               targets=TargetsOptions(control=f"127.0.0.1:{control}")) as fleet:
        assert fleet.dns_address is not None
        try:
            for (name, factory), port in zip(factories, ports, strict=True):
                (tmp_path / name).mkdir()
                servers.append(factory(tmp_path / name, ZONE, fleet.dns_address[1], port))
            for server in servers:
                sec.wait_until(lambda s=server: sec.dig(s.port, "api.example.test.") ==
                               ["192.0.2.10"], 60, "the primary's value", server)
            fleet.target_down("api-primary")
            died = time.monotonic()
            took = {}
            for server in servers:
                sec.wait_until(lambda s=server: sec.dig(s.port, "api.example.test.") ==
                               ["192.0.2.20"], died + REAL_BOUND - time.monotonic(),
                               f"the failover at {server.name}", server)
                took[server.name] = time.monotonic() - died
            print("failover after an endpoint's death:",
                  ", ".join(f"{k} {v:.2f}s" for k, v in took.items()))
        finally:
            for server in servers:
                server.stop()
