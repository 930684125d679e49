"""Self-doubt: a cut-off or overloaded checker reports unknown, not unhealthy."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
from healthplane.checker.metrics import CheckerMetrics
from healthplane.checker.runner import Checker
from healthplane.checker.selfdoubt import DoubtPolicy, SelfDoubt
from healthplane.proto.codec import HEALTHY, UNHEALTHY, UNKNOWN

from healthplane.runtime.clock import FakeClock, SystemClock
from tests.checker.helpers import Recorder, make_fleet, make_registry, tcp_checks, until

CANARY = "127.0.0.1:1"


def test_rule_canaries_majority_and_schedule_hysteresis():
    d = SelfDoubt(DoubtPolicy(missed_fraction=0.05, enter_after=2, leave_after=3))
    H, D = HEALTHY, UNHEALTHY
    assert not d.evaluate(100, 0, np.array([H, D]))          # half down: not a majority
    assert d.evaluate(200, 0, np.array([D, D, H]))           # two of three down
    assert d.reasons() == ["canaries"]
    assert not d.evaluate(300, 0, np.array([], dtype=np.uint8))   # no canaries: no doubt
    assert not d.evaluate(390, 10, np.array([]))             # one late window is not enough
    assert d.evaluate(480, 20, np.array([])) and d.reasons() == ["schedule"]
    assert d.evaluate(580, 20, np.array([]))                 # needs 3 good windows to clear
    assert d.evaluate(680, 20, np.array([]))
    assert not d.evaluate(780, 20, np.array([]))
    assert not d.evaluate(780, 20, np.array([]))             # an idle window is fine


async def run_checker(clock: FakeClock, checker: Checker, seconds: float) -> None:
    task = asyncio.create_task(checker.run())
    await clock.advance(seconds)
    checker.stop()
    await clock.advance(0.1)
    await task


async def test_canary_down_reports_every_check_unknown():
    clock = FakeClock()
    registry = make_registry(tcp_checks(20, interval=1.0, threshold=1))
    fleet = make_fleet({"r": ("a",)}, canaries=(CANARY,))
    ok = {f"c{i}": False for i in range(20)}                 # every target "fails" too
    ok[f"canary:{CANARY}"] = False
    checker = Checker(registry, fleet, "a", clock=clock, make_prober=Recorder(clock, ok=ok))
    await run_checker(clock, checker, 5.0)
    assert checker.doubt.canary_doubt
    assert np.all(checker.last_states == UNKNOWN)
    assert checker.metrics.self_doubt._value.get() == 1
    # Same world, canary reachable: the failures are believed.
    ok[f"canary:{CANARY}"] = True
    clock2 = FakeClock()
    trusting = Checker(registry, fleet, "a", clock=clock2, make_prober=Recorder(clock2, ok=ok))
    await run_checker(clock2, trusting, 5.0)
    assert not trusting.doubt.doubting
    assert np.all(trusting.last_states == UNHEALTHY)


async def test_stalling_checker_doubts_itself_then_recovers():
    clock = FakeClock()
    registry = make_registry(tcp_checks(200, interval=2.0, threshold=1))
    fleet = make_fleet({"r": ("a",)})
    checker = Checker(registry, fleet, "a", clock=clock, make_prober=Recorder(clock, ok=False))
    task = asyncio.create_task(checker.run())
    await clock.advance(5.0)
    assert np.all(checker.last_states == UNHEALTHY)
    # Overloaded: the loop keeps losing most of each second.
    for _ in range(4):
        clock.jump(1.5)
        await clock.advance(0.5)
    assert checker.doubt.schedule_doubt
    assert np.all(checker.last_states == UNKNOWN)
    # Back on schedule: doubt clears after enough good windows.
    await clock.advance(10.0)
    checker.stop()
    await clock.advance(0.1)
    await task
    assert not checker.doubt.doubting
    assert np.all(checker.last_states == UNHEALTHY)
    assert checker.metrics.missed_slots._value.get() > 0


async def test_checks_not_judged_lately_report_unknown():
    clock = FakeClock()
    registry = make_registry(tcp_checks(10, interval=1.0, threshold=1))
    checker = Checker(registry, make_fleet({"r": ("a",)}), "a", clock=clock,
                      make_prober=Recorder(clock))
    task = asyncio.create_task(checker.run())
    await clock.advance(3.0)
    assert np.all(checker.last_states == HEALTHY)
    checker.dispatcher.flush()
    checker.dispatcher.last_result[:5] -= 10.0                # as if 5 slots were never run
    checker.report_once()
    checker.stop()
    await clock.advance(0.1)
    await task
    assert checker.last_states.tolist() == [UNKNOWN] * 5 + [HEALTHY] * 5


async def test_real_tcp_canary_down_then_up():
    """Real probers: targets up, canary port closed -> all 00; canary opens -> votes."""
    target = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    tport = target.sockets[0].getsockname()[1]
    # The canary port stays reserved (bound, never listening: refused) until
    # its server starts on it, so nothing else on the machine can take it.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    cport = holder.getsockname()[1]
    canary = f"127.0.0.1:{cport}"
    registry = make_registry(tcp_checks(3, interval=1.0, timeout=0.5, port=tport, threshold=1))
    fleet = make_fleet({"r": ("a",)}, canaries=(canary,), report_interval=0.2)
    checker = Checker(registry, fleet, "a", clock=SystemClock(), canary_interval=0.2,
                      metrics=CheckerMetrics())
    task = asyncio.create_task(checker.run())
    canary_server = None
    try:
        # Waits on conditions, not fixed sleeps: a loaded machine may take
        # longer to run the probes, but must reach the same states.
        await until(lambda: checker.doubt.canary_doubt and checker.last_states.size == 3
                    and np.all(checker.last_states == UNKNOWN))
        canary_server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", cport,
                                                   reuse_port=True)
        await until(lambda: not checker.doubt.doubting)
        await until(lambda: np.all(checker.last_states == HEALTHY))
        assert not checker.doubt.doubting
    finally:
        checker.stop()
        await task
        target.close()
        if canary_server is not None:
            canary_server.close()
        holder.close()
