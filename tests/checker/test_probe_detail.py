"""The latest probe of each check leaves its outcome, reason, latency and
certificate expiry in the dispatcher, and the certificate metric counts them."""

from __future__ import annotations

import asyncio
import math

import numpy as np
from healthplane.checker.metrics import CheckerMetrics
from healthplane.checker.probes import Outcome, ProbeResult
from healthplane.checker.runner import Checker
from healthplane.proto.config.model import Check

from healthplane.runtime.clock import FakeClock
from tests.checker.helpers import make_fleet, make_registry

DAY = 86400.0


def scripted(clock: FakeClock, answers: dict[str, list[ProbeResult]]):
    """A make_prober whose prober for check c returns answers[c] in turn (the
    last one repeated)."""
    def make(check: Check, *, allow_private: bool):
        script = answers[check.id]
        calls = [0]

        async def probe() -> ProbeResult:
            result = script[min(calls[0], len(script) - 1)]
            calls[0] += 1
            return result
        return probe
    return make


async def test_latest_detail_per_check_and_expiring_certificates() -> None:
    clock = FakeClock()
    wall = clock.wall_ms() / 1000
    answers = {
        "soon": [ProbeResult(Outcome.OK, 0.010, "ok", wall + 10 * DAY)],
        "later": [ProbeResult(Outcome.OK, 0.020, "ok", wall + 20 * DAY)],
        "far": [ProbeResult(Outcome.FAILED, 0.030, "status 503", wall + 90 * DAY)],
        "plain": [ProbeResult(Outcome.TIMEOUT, 0.5, "timeout"),
                  ProbeResult(Outcome.REFUSED, 0.001, "refused")],
    }
    checks = [Check(id=c, type="https", host="192.0.2.1", port=443, interval=1.0, timeout=0.5,
                    failure_threshold=1) for c in answers]
    metrics = CheckerMetrics()
    checker = Checker(make_registry(checks), make_fleet({"r": ("a",)}), "a", clock=clock,
                      metrics=metrics, make_prober=scripted(clock, answers))
    task = asyncio.create_task(checker.run())
    await clock.advance(3.0)
    checker.stop()
    await clock.advance(0.1)
    await task
    d = checker.dispatcher
    d.flush()
    rows = [d.row_of[c] for c in answers]
    assert [d.reasons[r] for r in rows] == ["ok", "ok", "status 503", "refused"]
    assert [Outcome(int(d.outcomes[r])) for r in rows] == [
        Outcome.OK, Outcome.OK, Outcome.FAILED, Outcome.REFUSED]
    assert np.allclose(d.latencies[rows], [0.010, 0.020, 0.030, 0.001])
    days = d.cert_days_left(wall)[rows]
    assert np.allclose(days[:3], [10, 20, 90]) and math.isnan(days[3])
    assert metrics.registry.get_sample_value(
        "healthplane_checker_certificates_expiring", {"within_days": "14"}) == 1
    assert metrics.registry.get_sample_value(
        "healthplane_checker_certificates_expiring", {"within_days": "30"}) == 2
    counts = metrics.probe_counts
    assert counts[:, Outcome.TIMEOUT].sum() == 1 and counts[:, Outcome.REFUSED].sum() >= 1
