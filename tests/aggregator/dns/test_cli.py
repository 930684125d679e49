"""``healthplane dns`` as a real process, fed by a real gRPC Health server."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
from healthplane.proto import codec

from tests.aggregator.dns.fakes import FakeHealth

ZONE_YAML = """\
zone: example.test.
ttl: 5
records:
  - name: api.example.test.
    type: A
    policy: failover
    primary:   {value: 192.0.2.10, check: api-primary}
    secondary: {value: 192.0.2.20, check: api-secondary}
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healthplane", "dns", *args],
                          capture_output=True, text=True, timeout=30)


def test_bad_flags_and_files_give_one_line(tmp_path: Path) -> None:
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML)
    r = run("--zone", str(zone), "--aggregator", "nope", "--listen", "127.0.0.1:0")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--aggregator" in r.stderr
    r = run("--zone", str(tmp_path / "missing.yaml"), "--aggregator", "127.0.0.1:1")
    assert r.returncode == 1 and "missing.yaml" in r.stderr and "Traceback" not in r.stderr
    zone.write_text(ZONE_YAML.replace("policy: failover", "policy: roundrobin"))
    r = run("--zone", str(zone), "--aggregator", "127.0.0.1:1")
    assert r.returncode == 1 and "zone.yaml:" in r.stderr and "Traceback" not in r.stderr


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


async def query(port: int) -> list[str]:
    r = await dns.asyncquery.udp(dns.message.make_query("api.example.test.", "A"),
                                 "127.0.0.1", port=port, timeout=2)
    if r.rcode() == dns.rcode.SERVFAIL:
        return ["SERVFAIL"]   # no health snapshot yet: no answer from no data
    assert r.rcode() == dns.rcode.NOERROR
    return [rd.to_text() for rrset in r.answer for rd in rrset]


async def eventually(port: int, want: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := await query(port)) != want:
        assert time.monotonic() < deadline, f"still {got}, wanted {want}"
        await asyncio.sleep(0.05)


async def test_serves_follows_health_and_fails_open(tmp_path: Path) -> None:
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML)
    fake = FakeHealth(["api-primary", "api-secondary"])
    await fake.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "healthplane", "dns", "--zone", str(zone),
        "--aggregator", "127.0.0.1:1", "--aggregator", fake.address,
        "--listen", "127.0.0.1:0", "--stale-after", "1", "--tick", "0.1",
        "--metrics", "127.0.0.1:0",
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = mport = 0
        while not (port and mport):
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, "dns process exited early"
            if m := re.search(r"listening on 127\.0\.0\.1:(\d+) \(udp\+tcp\)", line):
                port = int(m.group(1))
            if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line):
                mport = int(m.group(1))
        drain = asyncio.create_task(proc.stderr.read())
        await eventually(port, ["192.0.2.10"])
        fake.set(api_primary=codec.UNHEALTHY, api_secondary=codec.HEALTHY)
        await eventually(port, ["192.0.2.20"])
        text = await asyncio.to_thread(scrape, mport)
        assert f'healthplane_dns_aggregator_current{{aggregator="{fake.address}"}} 1.0' in text
        assert re.search(r'healthplane_dns_queries_total\{rcode="NOERROR"\} [1-9]', text)
        assert re.search(r"healthplane_dns_answers_rebuilt_total [1-9]", text)
        age = float(re.search(r"^healthplane_dns_snapshot_age_seconds (\S+)$", text, re.M).group(1))
        assert 0 <= age < 5
        await fake.stop()                          # no aggregator left: stale after 1 s
        await eventually(port, ["192.0.2.10"])     # fail open: everything healthy
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert b"Traceback" not in await drain
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await fake.stop()


async def test_no_snapshot_is_servfail_then_fails_open_after_stale_after(tmp_path: Path) -> None:
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "healthplane", "dns", "--zone", str(zone),
        "--aggregator", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--stale-after", "2",
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = 0
        while not port:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, "dns process exited early"
            if m := re.search(r"listening on 127\.0\.0\.1:(\d+) \(udp\+tcp\)", line):
                port = int(m.group(1))
        drain = asyncio.create_task(proc.stderr.read())
        started = time.monotonic()
        # Nothing known: no answer from nothing...
        assert await query(port) == ["SERVFAIL"]
        # ...until nothing for stale_after is as stale as old data: fail open.
        await eventually(port, ["192.0.2.10"])
        assert time.monotonic() - started >= 1.0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert b"Traceback" not in await drain
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
