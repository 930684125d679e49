"""The status page in a real browser (Debian's headless Chromium) at 10,000 checks."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from healthplane.aggregator.server import run_aggregator
from healthplane.proto.config.model import Check, Fleet, Registry

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import report, snap

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
REGIONS = {"us-east": ("use1-a", "use1-b"), "eu-west": ("euw1-a", "euw1-b"),
           "ap-south": ("aps1-a", "aps1-b")}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def name(i: int) -> str:
    return f"{('web', 'api', 'db', 'img', 'rpc')[i % 5]}-{i}"


def registry(n: int) -> Registry:
    checks = tuple(Check(id=name(i), type="tcp", host="192.0.2.1", port=80) for i in range(n))
    return Registry(checks=checks, version=f"demo{n}")


def votes(reg: Registry, down: set[int], split: set[int], checker: str) -> list[int]:
    """Healthy everywhere except the down checks, and the split ones in us-east."""
    states = np.ones(reg.check_count, dtype=np.uint8)
    states[list(down)] = 2
    if checker.startswith("use1"):
        states[list(split)] = 2
    return states.tolist()


async def chromium(tmp_path: Path, *args: str, timeout: float = 90) -> str:
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out.decode()


async def serve_page(n: int, down: set[int], split: set[int]):
    reg = registry(n)
    fleet = Fleet(regions=dict(REGIONS), aggregators=("127.0.0.1:7000",), tick=1.0,
                  stale_after=3600.0)
    cm = run_aggregator(reg, fleet, clock=FakeClock(), start_ticking=False,
                        metrics_listen="127.0.0.1:0")
    agg = await cm.__aenter__()
    await report(agg.port, [snap(c, r, reg, votes(reg, down, split, c))
                            for r, ids in REGIONS.items() for c in ids])
    agg.on_tick()
    return cm, agg


def rows(dom: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="row-(\w+)" data-check="([^"]+)">', dom)


async def test_page_at_10000_checks_renders_filters_and_reads_without_colour(tmp_path):
    down, split = {7, 4242, 9999}, {12, 13}
    cm, agg = await serve_page(10_000, down, split)
    try:
        url = f"http://127.0.0.1:{agg.metrics.port}/"
        dom = await chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", url)
        assert "tick 1" in dom and "10000 checks" in dom, dom[:3000]
        # Live: the page fetched the checks again and again (every 2 s of its time).
        assert agg.status_page is not None and agg.status_page.requests >= 3
        assert 'data-status="healthy">✔ 9997 healthy' in dom
        assert 'data-status="unhealthy">✖ 3 unhealthy' in dom
        drawn = rows(dom)
        assert len(drawn) == 1000                    # the first 1,000; the filter finds more
        assert "10000 of 10000 checks match; showing the first 1000" in dom
        # Not healthy first, each with its status in words and symbols.
        assert [cid for _, cid in drawn[:3]] == [name(7), name(4242), name(9999)]
        assert drawn[3][0] == "healthy"
        assert "✖ unhealthy" in dom and "✔ healthy" in dom
        # A region split: us-east's two checkers say unhealthy, the others healthy.
        split_row = re.search(r'data-check="db-12">(.*?)</tr>', dom).group(1)
        assert "✔ healthy" in split_row and "4/6" in split_row
        assert split_row.count("✖ 0/2") == 1 and split_row.count("✔ 2/2") == 2
        assert "<th scope=\"col\">eu-west</th>" in dom

        dom = await chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom",
                             url + "#q=424")
        assert sorted(cid for _, cid in rows(dom)) == sorted(
            name(i) for i in range(10_000) if "424" in name(i))
        dom = await chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom",
                             url + "#bad=1")
        assert [cid for _, cid in rows(dom)] == [name(7), name(4242), name(9999)]

        shot = tmp_path / "page.png"
        await chromium(tmp_path, "--virtual-time-budget=10000", f"--screenshot={shot}",
                       "--window-size=1200,700", url)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        await cm.__aexit__(None, None, None)


async def write_readme_screenshot(out: Path) -> None:
    """The picture in README: 40 checks, two of them down a minute ago, one region split."""
    import tempfile
    import time as _time

    reg = registry(40)
    fleet = Fleet(regions=dict(REGIONS), aggregators=("127.0.0.1:7000",), tick=1.0,
                  stale_after=3600.0)
    clock = FakeClock(wall_start_ms=int(_time.time() * 1000) - 75_000)
    async with run_aggregator(reg, fleet, clock=clock, start_ticking=False,
                              metrics_listen="127.0.0.1:0") as agg:
        everyone = [(c, r) for r, ids in REGIONS.items() for c in ids]
        await report(agg.port, [snap(c, r, reg, votes(reg, set(), set(), c))
                                for c, r in everyone])
        agg.on_tick()
        await clock.advance(60.0)
        await report(agg.port, [snap(c, r, reg, votes(reg, {3, 17}, {8}, c), seq=2)
                                for c, r in everyone])
        agg.on_tick()
        await clock.advance(15.0)
        agg.on_tick()
        await chromium(Path(tempfile.mkdtemp()), "--virtual-time-budget=10000",
                       f"--screenshot={out}", "--window-size=1100,640",
                       f"http://127.0.0.1:{agg.metrics.port}/")


if __name__ == "__main__":    # python -m tests.aggregator.test_status_page docs/status-page.png
    asyncio.run(write_readme_screenshot(Path(sys.argv[1])))
