"""The DNS front as a hidden primary for real Knot, NSD and BIND secondaries.

Each test starts the front (``healthplane dns`` as a process, fed by a real
gRPC Health server), then the secondary from Debian's package on loopback
ports; ``dig`` at the secondary must show a failover within the detection
bound plus the transfer time. Detection here is one tick of the fake
aggregator (0.1 s), so the bound is dominated by NOTIFY, the SOA check and
the transfer: ``FAILOVER_BOUND`` seconds, generous for a loaded machine.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from pathlib import Path

import pytest
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
