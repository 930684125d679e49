"""Zone reload: SIGHUP and the period adopt a good zone and keep the running one for a bad."""

from __future__ import annotations

import asyncio
import re
import signal
from collections import Counter
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
from healthplane.aggregator.dns.reload import ZoneFiles, zone_reloader
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.loader import parse_zone

from healthplane.runtime.clock import SystemClock
from tests.aggregator.dns.fakes import FakeHealth
from tests.aggregator.dns.front_proc import running
from tests.aggregator.dns.test_cli import ZONE_YAML, scrape

EXTRA = """\
  - name: new.example.test.
    type: A
    values: [{value: 192.0.2.99}]
"""


async def _ask(port: int, name: str) -> tuple[int, list[str]]:
    r = await dns.asyncquery.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                                 timeout=2)
    return r.rcode(), [rd.to_text() for rrset in r.answer for rd in rrset]


async def _until(port: int, name: str, want: tuple[int, list[str]], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while await _ask(port, name) != want:
            await asyncio.sleep(0.05)


async def test_sighup_adopts_a_good_zone_and_keeps_the_running_one_for_a_bad(
        tmp_path: Path) -> None:
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML)
    fake = FakeHealth(["api-primary", "api-secondary"])
    await fake.start()
    try:
        async with running("dns", "--zone", str(zone), "--aggregator", fake.address,
                           "--listen", "127.0.0.1:0", "--tick", "0.1",
                           "--reload-period", "0", metrics=True) as front:
            assert await _ask(front.port, "new.example.test.") == (dns.rcode.NXDOMAIN, [])
            zone.write_text(ZONE_YAML + EXTRA)
            front.proc.send_signal(signal.SIGHUP)
            await _until(front.port, "new.example.test.", (dns.rcode.NOERROR, ["192.0.2.99"]))
            await front.wait_log(r"reload adopted.*what=zone")

            # A bad file: logged with file:line, counted, and the running zone stays.
            zone.write_text(ZONE_YAML + EXTRA.replace("192.0.2.99", "192.0.2.999"))
            for _ in range(3):                       # a burst of signals never kills it
                front.proc.send_signal(signal.SIGHUP)
            await front.wait_log(r"reload rejected.*what=zone.*zone\.yaml:11: "
                                 r"records\[1\]\.values\[0\]\.value")
            assert front.proc.returncode is None
            assert await _ask(front.port, "new.example.test.") == \
                (dns.rcode.NOERROR, ["192.0.2.99"])
            assert await _ask(front.port, "api.example.test.") == \
                (dns.rcode.NOERROR, ["192.0.2.10"])
            text = await asyncio.to_thread(scrape, front.mport)
            assert re.search(r'healthplane_dns_zone_reloads_total\{result="failed"\} [1-9]', text)
            assert 'healthplane_dns_zone_reloads_total{result="adopted"} 1.0' in text
        assert "Traceback" not in front.log()
    finally:
        await fake.stop()


async def test_the_period_picks_up_a_changed_file(tmp_path: Path) -> None:
    zone = tmp_path / "zone.yaml"
    zone.write_text(ZONE_YAML)
    fake = FakeHealth(["api-primary", "api-secondary"])
    await fake.start()
    try:
        async with running("dns", "--zone", str(zone), "--aggregator", fake.address,
                           "--listen", "127.0.0.1:0", "--reload-period", "0.3") as front:
            zone.write_text(ZONE_YAML + EXTRA)
            await _until(front.port, "new.example.test.", (dns.rcode.NOERROR, ["192.0.2.99"]))
            await front.wait_log(r"reload adopted.*what=zone")
    finally:
        await fake.stop()


def test_tasting_reports_the_file_errors(tmp_path: Path) -> None:
    zone = tmp_path / "zone.yaml"
    zone.write_text("zone: example.test.\nrecords: 3\n")
    try:
        ZoneFiles(str(zone)).load()
    except ConfigError as exc:
        assert exc.errors == [f"{zone}:2: records: must be a list, got integer 3"]
    else:
        raise AssertionError("a bad zone was accepted")
    zone.write_text(ZONE_YAML)
    assert ZoneFiles(str(zone)).load() == parse_zone(ZONE_YAML, str(zone))


async def test_the_same_zone_again_is_unchanged_and_a_bad_one_never_adopted(
        tmp_path: Path) -> None:
    path = tmp_path / "zone.yaml"
    path.write_text(ZONE_YAML)
    served = [parse_zone(ZONE_YAML, str(path))]
    counts: Counter[str] = Counter()
    reloader = zone_reloader(ZoneFiles(str(path)), served.append, lambda: served[-1], counts,
                             clock=SystemClock(), period=0)
    assert await reloader.reload_once(force=True) == "unchanged"
    path.write_text(ZONE_YAML + "  - {name: x.example.test., type: A, values: [{value: 1.2.3}]}\n")
    assert await reloader.reload_once() == "failed"
    path.write_text(ZONE_YAML + EXTRA)
    assert await reloader.reload_once() == "adopted"
    assert len(served) == 2 and served[-1].records[-1].name == "new.example.test."
    assert counts == Counter({"unchanged": 1, "failed": 1, "adopted": 1})
