"""The Checker as a whole: construction errors, bugs stop it, fixed report cadence."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from healthplane.checker.plan import UnknownChecker
from healthplane.checker.runner import Checker
from healthplane.proto.codec import HEALTHY
from healthplane.proto.config.model import Check

from healthplane.runtime.clock import FakeClock
from tests.checker.helpers import Recorder, make_fleet, make_registry, tcp_checks


def test_unknown_checker_id_is_refused():
    with pytest.raises(UnknownChecker, match="'zz'.*known: a"):
        Checker(make_registry(tcp_checks(2)), make_fleet({"r": ("a",)}), "zz")


async def test_a_dying_loop_stops_the_checker():
    clock = FakeClock()
    checker = Checker(make_registry(tcp_checks(3, interval=1.0)), make_fleet({"r": ("a",)}),
                      "a", clock=clock, make_prober=Recorder(clock))

    def boom() -> None:
        raise RuntimeError("bug")

    checker.dispatcher._housekeeping = boom
    task = asyncio.create_task(checker.run())
    await clock.advance(3.0)
    assert task.done()
    await task
    assert isinstance(checker.failed, RuntimeError)


async def test_reports_on_a_fixed_cadence_and_skip_stalls():
    clock = FakeClock()
    checks = tcp_checks(5, interval=1.0, threshold=1)
    checks.append(Check(id="calc", type="calculated", children=("c0",)))
    checker = Checker(make_registry(checks), make_fleet({"r": ("a",)}, report_interval=0.5),
                      "a", clock=clock, make_prober=Recorder(clock))
    sent: list[tuple[float, int]] = []
    real = checker.report_once

    def spy():
        msg = real()
        sent.append((clock.now(), msg.sequence))
        return msg

    checker.report_once = spy
    task = asyncio.create_task(checker.run())
    await clock.advance(5.0)                      # reports at 0, 0.5, ..., 5.0
    clock.jump(3.2)                               # a stall: slots 5.5 .. 8.0 pass unseen
    await clock.advance(2.0)
    checker.stop()
    await clock.advance(0.1)
    await task
    times = np.array([t for t, _ in sent]) - sent[0][0]
    assert [s for _, s in sent] == list(range(1, len(sent) + 1))
    # On the grid k * 0.5 s from the first, except the one late report that
    # ends the stall (slot 8.0, 0.2 s late); 5.5 .. 7.5 are skipped, not
    # bunched, and the next report is back on the grid.
    expected = [k * 0.5 for k in range(11)] + [8.2, 8.5, 9.0, 9.5, 10.0]
    np.testing.assert_allclose(times, expected, atol=1e-9)
    assert checker.report_loop.missed == 5
    assert checker.last_states.tolist() == [HEALTHY] * 5 + [0]
