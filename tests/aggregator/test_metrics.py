"""--metrics: Prometheus text over HTTP with the documented names."""

from __future__ import annotations

import asyncio
import urllib.request

from healthplane.aggregator.server import run_aggregator
from prometheus_client.parser import text_string_to_metric_families

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap

REG = make_registry()
FLEET = make_fleet()


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_ticks_snapshots_drops_and_statuses():
    async with run_aggregator(REG, FLEET, clock=FakeClock(), start_ticking=False,
                              metrics_listen="127.0.0.1:0") as agg:
        await report(agg.port, [
            snap("use1-a", "us-east", REG, [1, 2, 1, 2, 0]),
            snap("use1-a", "eu-west", REG, [1, 2, 1, 2, 0]),
            snap("ghost", "us-east", REG, [1, 2, 1, 2, 0]),
        ])
        agg.on_tick()
        agg.on_tick()
        sequence = agg.state.sequence
        m = await asyncio.to_thread(_scrape, agg.metrics.port)
    p = "healthplane_aggregator_"
    assert m[(p + "ticks_total", ())] == 2
    assert m[(p + "tick_duration_seconds_count", ())] == 2
    assert m[(p + "snapshots_accepted_total", ())] == 1
    assert m[(p + "snapshots_dropped_total", (("reason", "region_mismatch"),))] == 1
    assert m[(p + "snapshots_dropped_total", (("reason", "unknown_checker"),))] == 1
    assert m[(p + "snapshots_dropped_total", (("reason", "padding_set"),))] == 0
    assert m[(p + "fresh_checkers", ())] == 1
    assert m[(p + "checkers", ())] == 3
    assert m[(p + "checks", (("status", "healthy"),))] == 3
    assert m[(p + "checks", (("status", "unhealthy"),))] == 2
    assert m[(p + "state_changes_last_tick", ())] == 0
    assert m[(p + "watchers", ())] == 0
    assert m[(p + "tick_sequence", ())] == sequence
    assert m[(p + "registry_info", (("previous", ""), ("version", "v1")))] == 1
    assert m[(p + "registry_checks", ())] == 5
