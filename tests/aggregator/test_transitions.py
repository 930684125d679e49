"""Status changes: named by index from the tick, and logged one line each, bounded."""

from __future__ import annotations

import logging

import numpy as np
from healthplane.aggregator.server import run_aggregator
from healthplane.aggregator.transitions import LOG_LIMIT
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap
from tests.aggregator.tick_helpers import Rig, registry


def test_changed_indices_name_the_changed_checks():
    rng = np.random.default_rng(3)
    n = 5000
    rig = Rig(registry(n), 1)
    first = rng.integers(1, 3, n)
    rig.set(0, first.tolist())
    rig.tick()
    for flips in (0, 7, 63, 64, 2000):
        now = first.copy()
        moved = rng.choice(n, flips, replace=False)
        now[moved] = 3 - now[moved]
        rig.set(0, now.tolist())
        res = rig.tick()
        got = res.changed_indices()
        assert res.changed == flips
        assert len(got) == min(flips, 64) and set(got.tolist()) <= set(moved.tolist())
        if flips <= 64:
            assert sorted(got.tolist()) == sorted(moved.tolist())
        first = now


async def test_each_change_is_one_line_with_votes_and_reasons_bounded(caplog):
    ids = tuple(f"c{i}" for i in range(LOG_LIMIT + 5))
    reg = make_registry(ids)
    fleet = make_fleet()
    async with run_aggregator(reg, fleet, clock=FakeClock(), start_ticking=False,
                              warm_up=False) as agg:
        msg = snap("use1-a", "us-east", reg, [1] * len(ids))
        await report(agg.port, [msg])
        agg.on_tick()
        caplog.set_level(logging.INFO, logger="healthplane.aggregator.transitions")
        down = snap("use1-a", "us-east", reg, [2, 1] + [1] * (len(ids) - 2))
        down.details.add(check_index=0, outcome=pb.STATUS_UNHEALTHY, latency_ms=3.5,
                         reason="status 503" + " " * 22)
        await report(agg.port, [down])
        agg.on_tick()
        fields = [(r.getMessage(), r.check, r.old, r.new, r.votes, r.reasons)
                  for r in caplog.records]
        assert fields == [("status change", "c0", "healthy", "unhealthy", "0/1",
                           "use1-a:status 503")]
        caplog.clear()
        await report(agg.port, [snap("use1-a", "us-east", reg, [1, 2] + [2] * (len(ids) - 2))])
        pub = agg.on_tick()
        records = caplog.records
        assert pub.changed == len(ids)
        assert len(records) == LOG_LIMIT + 1
        last = records[-1]
        assert (last.getMessage(), last.changes, last.logged, last.tick) == (
            "status changes not logged", len(ids), LOG_LIMIT, pub.sequence)
