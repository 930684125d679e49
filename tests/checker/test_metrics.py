"""The metrics endpoint serves every documented healthplane_checker_* name."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request

import healthplane.checker.metrics as metrics_mod
import numpy as np
from healthplane.checker.metrics import CheckerMetrics, readiness
from healthplane.checker.runner import Checker

from healthplane.runtime.clock import FakeClock
from healthplane.runtime.sideport import SidePort
from tests.checker.helpers import Recorder, make_fleet, make_registry, tcp_checks


def _status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def documented_names() -> set[str]:
    return set(re.findall(r"``(healthplane_checker_\w+)", metrics_mod.__doc__ or ""))


async def test_every_documented_metric_is_served_and_counts_probes():
    clock = FakeClock()
    metrics = CheckerMetrics()
    registry = make_registry(tcp_checks(10, interval=1.0, threshold=1))
    fleet = make_fleet({"r": ("a",)}, canaries=("127.0.0.1:1",), aggregators=("127.0.0.1:1",))
    checker = Checker(registry, fleet, "a", clock=clock, metrics=metrics,
                      make_prober=Recorder(clock, ok={"c3": False}))
    task = asyncio.create_task(checker.run())
    await clock.advance(5.0)
    checker.stop()
    await clock.advance(0.1)
    await task
    server = SidePort(metrics.registry, lambda: readiness(checker))
    port = await server.start("127.0.0.1", 0)
    try:
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                           timeout=5).read().decode())
        # Its only aggregator (127.0.0.1:1) never answered, and it has stopped: not ready.
        status, body = await asyncio.to_thread(_status, f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body.startswith("not ready: no Report stream open"), body
    finally:
        await server.stop()
    names = documented_names()
    assert len(names) >= 14
    for name in names:
        assert re.search(rf"^{name}(_bucket|_count|_sum)?[{{ ]", text, re.M), name
    ok = float(re.search(r'probes_total\{kind="tcp",result="ok"\} (\S+)', text).group(1))
    failed = float(re.search(r'probes_total\{kind="tcp",result="refused"\} (\S+)',
                             text).group(1))
    assert failed >= 4 and ok >= 9 * 4 and ok + failed == metrics.probes_total()
    assert "healthplane_checker_checks_owned 10.0" in text
    lateness_count = float(re.search(r"schedule_lateness_seconds_count (\S+)", text).group(1))
    # Every started probe observed its lateness; every result folded in
    # (the last few finished after the last flush) was counted.
    assert lateness_count == checker.dispatcher.launched
    assert ok + failed == checker.dispatcher.finished


def test_lateness_histogram_buckets():
    m = CheckerMetrics()
    m.observe_lateness(np.array([0.0, 0.001, 0.003, 0.2, 30.0]))
    # le=0.001 includes 0.001 itself (Prometheus buckets are upper-inclusive).
    assert m.lateness_counts[0] == 2 and m.lateness_counts[-1] == 1
    assert abs(m.lateness_sum - 30.204) < 1e-9
