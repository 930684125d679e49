"""The aggregator's HTTP side port: health, readiness, process metrics, status JSON."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

from healthplane.aggregator.server import run_aggregator

from healthplane import __version__
from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap

REG = make_registry()
FLEET = make_fleet()


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


async def get(port: int, path: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_get, port, path)


async def test_paths_readiness_and_status_json():
    async with run_aggregator(REG, FLEET, clock=FakeClock(), start_ticking=False,
                              metrics_listen="127.0.0.1:0", warm_up=False) as agg:
        port = agg.metrics.port
        assert (await get(port, "/healthz"))[0] == 200
        status, _, body = await get(port, "/readyz")
        assert (status, body) == (503, "not ready: no tick computed yet\n")
        assert (await get(port, "/api/v1/checks"))[0] == 503
        agg.on_tick()                       # a tick, but from no votes
        status, _, body = await get(port, "/readyz")
        assert status == 503 and "no fresh checker" in body
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 2, 1, 2, 0]),
                                snap("euw1-a", "eu-west", REG, [1, 1, 2, 2, 0])])
        agg.on_tick()
        assert (await get(port, "/readyz"))[0] == 200

        status, ctype, text = await get(port, "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        assert f'healthplane_build_info{{version="{__version__}"}} 1.0' in text
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_open_fds", "process_start_time_seconds",
                     "healthplane_aggregator_ticks_total"):
            assert f"\n{name} " in text, name
        assert (await get(port, "/nope"))[0] == 404
        assert (await get(port, "/metrics/extra"))[0] == 404

        status, ctype, text = await get(port, "/api/v1/checks")
        assert status == 200 and ctype.startswith("application/json")
        doc = json.loads(text)
        assert doc["regions"] == ["us-east", "eu-west"] and doc["total"] == 5
        assert doc["sequence"] == agg.state.sequence and not doc["truncated"]
        rows = {c["id"]: c for c in doc["checks"]}
        assert list(rows) == ["web-1", "web-2", "web-3", "db-1", "api-1"]
        assert rows["web-1"]["status"] == "healthy"
        assert rows["web-1"]["by_region"] == [[1, 1], [1, 1]]
        assert rows["web-2"]["by_region"] == [[0, 1], [1, 1]]
        assert rows["db-1"]["status"] == "unhealthy"
        assert (rows["db-1"]["healthy_votes"], rows["db-1"]["reporting_votes"]) == (0, 2)
        assert rows["api-1"]["by_region"] == [[0, 0], [0, 0]]

        status, ctype, html = await get(port, "/")
        assert status == 200 and ctype.startswith("text/html")
        assert "api/v1/checks" in html and "<script" in html
        assert "http://" not in html and "https://" not in html   # no external assets


async def test_not_ready_while_warming_up():
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock, start_ticking=False,
                              metrics_listen="127.0.0.1:0") as agg:
        # One checker of the fleet reported: the aggregator still warms up.
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 1, 1, 1, 1])])
        agg.on_tick()
        status, _, body = await get(agg.metrics.port, "/readyz")
        assert status == 503 and "warming up" in body
        await clock.advance(FLEET.stale_after)      # the warm-up ends after one stale_after
        await report(agg.port, [snap("euw1-a", "eu-west", REG, [1, 1, 1, 1, 1])])
        agg.on_tick()
        assert (await get(agg.metrics.port, "/readyz"))[0] == 200


async def test_readiness_stays_once_reached():
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock, start_ticking=False,
                              metrics_listen="127.0.0.1:0", warm_up=False) as agg:
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 1, 1, 1, 1])])
        agg.on_tick()
        assert (await get(agg.metrics.port, "/readyz"))[0] == 200
        await clock.advance(FLEET.stale_after + 1)    # every vote goes stale
        agg.on_tick()
        assert agg.state.latest is not None and agg.state.latest.fresh_checkers == 0
        assert (await get(agg.metrics.port, "/readyz"))[0] == 200
