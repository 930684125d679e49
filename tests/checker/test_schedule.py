"""The fixed schedule, on virtual time: once per interval, flat, no catch-up."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from healthplane.checker.dispatch import Dispatcher
from healthplane.checker.probes.base import Outcome, ProbeResult
from healthplane.checker.schedule import Schedule, phase_fraction

from healthplane.runtime.clock import FakeClock
from tests.checker.helpers import Recorder, tcp_checks


def slots_between(phase: float, interval: float, t0: float, t1: float, *,
                  closed: bool = True) -> int:
    """How many of phase + k * interval lie in [t0, t1] (closed) or (t0, t1)."""
    ks = np.arange(np.floor((t0 - phase) / interval) - 1, np.ceil((t1 - phase) / interval) + 2)
    times = phase + ks * interval
    inside = (times >= t0) & (times <= t1) if closed else (times > t0) & (times < t1)
    return int(np.count_nonzero(inside))


def make_dispatcher(clock, checks, recorder, **kw) -> Dispatcher:
    return Dispatcher(
        ids=[c.id for c in checks],
        probers=[recorder(c, allow_private=True) for c in checks],
        intervals=np.array([c.interval for c in checks]),
        timeouts=np.array([c.timeout for c in checks]),
        thresholds=np.array([c.failure_threshold for c in checks]),
        kinds=np.zeros(len(checks), dtype=np.int64),
        checker_id="use1-a", clock=clock, **kw)


def test_windows_tile_time_each_slot_once():
    rng = np.random.default_rng(1)
    n = 5000
    intervals = rng.choice([1.0, 2.5, 7.0, 30.0, 0.3 * 10], size=n)
    sched = Schedule(intervals, rng.random(n) * intervals)
    counts = np.zeros(n, dtype=int)
    t, end = 12345.678, 12345.678 + 60.0
    while t < end:
        t1 = min(t + sched.max_window, end)
        times, pos = sched.slots_in(t, t1)
        assert np.all(np.diff(times) >= 0) and np.all((times >= t) & (times < t1))
        assert np.unique(pos).size == pos.size
        counts += np.bincount(pos, minlength=n)
        t = t1
    expected = np.floor(60.0 / intervals)
    assert np.all((counts == expected) | (counts == expected + 1))
    assert sched.count_slots(12345.678, end) == counts.sum()


def test_phase_is_stable_and_uniform():
    assert phase_fraction("api", "use1-a") == phase_fraction("api", "use1-a")
    assert phase_fraction("api", "use1-a") != phase_fraction("api", "use1-b")
    fr = np.array([phase_fraction(f"c{i}", "x") for i in range(20000)])
    hist = np.histogram(fr, bins=10, range=(0, 1))[0]
    assert hist.min() > 0.9 * 2000 and hist.max() < 1.1 * 2000


async def test_each_check_exactly_once_per_interval():
    clock = FakeClock()
    checks = (tcp_checks(60, interval=1.0, prefix="a") + tcp_checks(60, interval=2.0, prefix="b")
              + tcp_checks(60, interval=5.0, prefix="e"))
    rec = Recorder(clock)
    d = make_dispatcher(clock, checks, rec)
    start = clock.now()
    task = asyncio.create_task(d.run())
    await clock.advance(100.0)
    d.stop()
    await clock.advance(1.0)
    await task
    for c in checks:
        starts = np.array(rec.starts[c.id])
        phase = phase_fraction(c.id, "use1-a") * c.interval
        # Every slot in [start, start + 100] ran, the last one included.
        assert starts.size == slots_between(phase, c.interval, start, start + 100.0), c.id
        gaps = np.diff(starts)
        # Start times sit on phase + k * interval, never early, late by at
        # most the wake-up resolution (slots that close share a wake-up).
        tick = d.resolution + 1e-9
        assert np.all(np.abs(gaps - c.interval) <= tick), (c.id, gaps)
        offsets = (starts - phase) / c.interval
        late = (offsets - np.round(offsets)) * c.interval
        assert np.all((late >= -1e-9) & (late <= tick)), (c.id, late)
    assert d.missed == 0
    assert d.launched == sum(len(v) for v in rec.starts.values())
    assert start < clock.now()


async def test_load_is_flat_across_the_interval():
    clock = FakeClock()
    checks = tcp_checks(2000, interval=10.0)
    rec = Recorder(clock)
    d = make_dispatcher(clock, checks, rec)
    t0 = clock.now()
    task = asyncio.create_task(d.run())
    await clock.advance(20.0)
    d.stop()
    await clock.advance(1.0)
    await task
    starts = np.concatenate([np.array(v) for v in rec.starts.values()]) - t0
    per_second = np.histogram(starts, bins=20, range=(0, 20))[0]
    # 2000 checks every 10 s: 200 probes per second, hash phases: within 25 %.
    assert per_second.min() >= 150 and per_second.max() <= 250, per_second


async def test_stalled_slots_are_skipped_and_counted_not_bunched():
    clock = FakeClock()
    checks = tcp_checks(200, interval=2.0)
    rec = Recorder(clock)
    d = make_dispatcher(clock, checks, rec)
    task = asyncio.create_task(d.run())
    await clock.advance(10.0)
    assert d.missed == 0
    stall_start = clock.now()
    clock.jump(7.0)                 # the process hung for 7 s
    await clock.advance(10.0)
    d.stop()
    await clock.advance(1.0)
    await task
    # Every slot of the stall more than the late bound (0.5 s) before its
    # end is missed; those of its last half second run late, once each.
    phases = [phase_fraction(c.id, "use1-a") * c.interval for c in checks]
    assert d.missed == sum(slots_between(p, 2.0, stall_start, stall_start + 6.5,
                                         closed=False) for p in phases)
    for c in checks:
        starts = np.array(rec.starts[c.id])
        phase = phase_fraction(c.id, "use1-a") * c.interval
        slot = np.floor((starts - phase + 1e-6) / c.interval)
        late = starts - (phase + slot * c.interval)
        # Each start belongs to its own slot (nothing replayed in a burst),
        # and none started more than the late bound (0.5 s) after its slot.
        assert np.unique(slot).size == slot.size, "a slot ran twice"
        assert np.all(late <= 0.5 + 1e-6), late
        assert np.count_nonzero(starts > stall_start) >= 4
    # Every slot of the run was either started or counted missed.
    assert d.launched + d.missed == sum(slots_between(p, 2.0, stall_start - 10.0,
                                                      stall_start + 17.0) for p in phases)


async def test_concurrency_bound_holds_and_timeouts_count_as_failures():
    clock = FakeClock()
    checks = tcp_checks(50, interval=1.0, timeout=1.0, threshold=1)
    rec = Recorder(clock, latency=5.0)          # probers that overrun their timeout
    d = make_dispatcher(clock, checks, rec, limit=10)
    task = asyncio.create_task(d.run())
    peak = 0
    for _ in range(100):
        await clock.advance(0.05)
        peak = max(peak, d.in_flight)
    d.stop()
    await clock.advance(1.0)
    await task
    assert peak <= 10
    d.flush()
    assert d.missed > 0
    # Every finished probe was cut at its timeout: all failures.
    judged = d.verdicts.state[d.verdicts.fail_run > 0]
    assert judged.size > 0 and np.all(judged == 2)


@pytest.mark.parametrize("n", [100_000])
def test_planning_100k_checks_is_cheap(n):
    import time
    rng = np.random.default_rng(0)
    intervals = rng.choice([10.0, 30.0], size=n)
    sched = Schedule(intervals, rng.random(n) * intervals)
    t0 = time.process_time()
    total = 0
    for w in range(30):
        total += sched.slots_in(1000.0 + w, 1001.0 + w)[0].size
    # Generous: 30 windows (30 s of schedule) in well under a second of CPU.
    assert time.process_time() - t0 < 3.0
    assert total == sched.count_slots(1000.0, 1030.0)


async def test_at_the_bound_wakeups_do_not_follow_every_finished_probe():
    # At the bound, probes finish one by one. Waking the dispatcher (and
    # running its numpy pass over the waiting slots) for each one cost more
    # CPU than the probes themselves, exactly when the checker is short of
    # room: it polls at its resolution instead.
    clock = FakeClock()
    checks = tcp_checks(400, interval=1.0, timeout=1.0)
    rec = Recorder(clock, latency=0.9)             # each probe holds its place 0.9 s
    d = make_dispatcher(clock, checks, rec, limit=100, resolution=0.05)
    calls = 0
    launch = d._launch

    def counting_launch(*args):
        nonlocal calls
        calls += 1
        return launch(*args)
    d._launch = counting_launch
    task = asyncio.create_task(d.run())
    peak = 0
    for _ in range(100):
        await clock.advance(0.05)
        peak = max(peak, d.in_flight)
    d.stop()
    await clock.advance(1.0)
    await task
    assert peak <= 100
    # 5 s at the bound: about limit / latency = 111 probes start per second,
    # all the room there is, in at most one wake-up per resolution step.
    assert d.launched >= 5 * 100 / 0.9 * 0.8, d.launched
    assert calls <= 5 / 0.05 * 1.5, calls


async def test_a_stall_longer_than_the_stale_rule_restarts_verdicts_from_unknown():
    """SIGSTOP, a VM pause: the first result after it must not revive the old verdict."""
    clock = FakeClock()
    checks = tcp_checks(4, interval=1.0, timeout=0.5, prefix="s", threshold=3)
    rec = Recorder(clock, ok=True)
    d = make_dispatcher(clock, checks, rec)
    task = asyncio.create_task(d.run())
    await clock.advance(5.0)
    d.flush()
    assert d.verdicts.state.tolist() == [1, 1, 1, 1]
    rec.ok = False            # the endpoints die while the process is stopped
    clock.jump(10.0)          # the stall: time moves, nothing runs
    states = set()
    for _ in range(30):       # the first second after the stall, in small steps
        await clock.advance(0.05)
        d.flush()
        states |= set(d.verdicts.state.tolist())
    d.stop()
    await clock.advance(1.0)
    await task
    # Unknown (rebuilding: one failure of three), never the pre-stall healthy.
    assert states == {0}


async def test_a_probe_that_answered_before_a_stall_counts_as_a_timeout_after_it():
    """Its answer came before the pause; read after it, it must not vote healthy."""
    clock = FakeClock()
    checks = tcp_checks(50, interval=1.0, timeout=0.5, prefix="f", threshold=3)
    ok = {"now": True}
    held = {"on": False}
    release = asyncio.Event()

    def make_prober(check, *, allow_private: bool):
        async def probe() -> ProbeResult:
            answer = ok["now"]          # the reply is in the socket buffer already
            if held["on"]:
                await release.wait()    # ... and is read only after the stall
            return ProbeResult(Outcome.OK if answer else Outcome.REFUSED, 0.01,
                               "ok" if answer else "refused")
        return probe

    d = make_dispatcher(clock, checks, make_prober)
    task = asyncio.create_task(d.run())
    await clock.advance(5.0)
    d.flush()
    assert set(d.verdicts.state.tolist()) == {1}
    held["on"] = True
    await clock.advance(0.4)
    assert d.in_flight > 0      # these have their answer, unread, when the process stops
    ok["now"] = False           # the endpoints die while the process is stopped
    clock.jump(10.0)
    held["on"] = False
    release.set()
    votes = set()
    for _ in range(30):
        await clock.advance(0.05)
        d.flush()
        # What a report would say: a stale row votes unknown.
        votes |= set(np.where(d.stale(clock.now()), 0, d.verdicts.state).tolist())
    d.stop()
    await clock.advance(1.0)
    await task
    assert 1 not in votes, "a pre-stall answer voted healthy"


async def test_results_buffered_before_a_stall_do_not_rebuild_a_verdict_after_it():
    """Read before the pause, folded after it: pre-stall evidence, not a new vote."""
    clock = FakeClock()
    checks = tcp_checks(500, interval=1.0, timeout=0.5, prefix="b", threshold=3)
    rec = Recorder(clock, ok=True)
    d = make_dispatcher(clock, checks, rec)
    task = asyncio.create_task(d.run())
    await clock.advance(5.0)
    d.flush()
    assert set(d.verdicts.state.tolist()) == {1}
    for _ in range(200):              # until a result waits, unfolded, for the next flush
        if d._res_rows:
            break
        await clock.advance(0.002)
    assert d._res_rows
    rec.ok = False                    # the endpoints die while the process is stopped
    clock.jump(10.0)
    votes = set()
    for _ in range(30):
        d.flush()
        votes |= set(np.where(d.stale(clock.now()), 0, d.verdicts.state).tolist())
        await clock.advance(0.05)
    d.stop()
    await clock.advance(1.0)
    await task
    assert 1 not in votes, "a result read before the stall voted healthy after it"
