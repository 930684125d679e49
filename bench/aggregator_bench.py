"""Aggregator tick benchmark: one line per figure.

    .venv/bin/python bench/aggregator_bench.py            # in-process ticks, then the flood
    .venv/bin/python bench/aggregator_bench.py --no-flood # in-process ticks only

In-process: the whole tick (vote count, inversion, disabling, unknown_as,
calculated checks, encoding the snapshot) of aggregator.tick.TickEngine over
(checkers, checks) = (16, 100,000), (32, 1,000,000) and (100, 1,000,000),
pinned to one core, on both tick paths in the same run: the numpy passes
("python") and the compiled kernel ("compiled", when built). Check-states
per second = checkers x checks / tick time. The goal is 10e9 at (100,
1,000,000), a 10 ms tick, and the stretch goal a tick within 3x of the
memory-bandwidth bound: the time this machine takes to read a buffer the
size of the slot matrix once, which the benchmark measures and prints first.
Also: the same tick when every check flips (a failure storm must cost the
same), with some checkers stale (the per-row mask path), and the
ingest-side cost of remapping one snapshot from the previous registry.
Every figure is a median and a best of --repeat ticks: the machine may be
shared, so the load average is printed beside them.

Flood (bench/aggregator_flood.py): a real `healthplane aggregator` process,
fed by sender processes over gRPC at the normal report rate, then as fast
as they can; compares the server's own tick-duration metric and RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from healthplane.aggregator import tick_kernel  # noqa: E402
from healthplane.aggregator.remap import build_remap  # noqa: E402
from healthplane.aggregator.tick import TickEngine  # noqa: E402
from healthplane.aggregator.votes import SlotMatrix  # noqa: E402
from healthplane.proto import codec  # noqa: E402
from healthplane.proto.config.model import Check, Fleet, Registry  # noqa: E402

SIZES = [(16, 100_000), (32, 1_000_000), (100, 1_000_000)]
GOAL = 10e9


def pin_one_core() -> int:
    """Run on one core (the last one we may use), so figures are per core."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def bench_registry(n: int) -> Registry:
    """n checks: 1 % inverted, 1 % disabled, 0.1 % calculated (two levels)."""
    checks = []
    n_calc = max(2, n // 1000)
    n_probe = n - n_calc
    for i in range(n_probe):
        checks.append(Check(id=f"c{i}", type="tcp", host="192.0.2.1", port=80,
                            inverted=i % 100 == 7, disabled=i % 100 == 42))
    for k in range(n_calc):
        if k % 10 == 9:      # nested: over three calculated checks
            kids = tuple(f"calc{(k - j) % n_calc}" for j in (1, 2, 3))
        else:
            kids = tuple(f"c{(k * 37 + j * 101) % n_probe}" for j in range(3))
        checks.append(Check(id=f"calc{k}", type="calculated", children=kids,
                            healthy_threshold=2))
    return Registry(tuple(checks), "bench")


def bench_fleet(n: int) -> Fleet:
    regions = {f"r{r}": tuple(f"k{i}" for i in range(n) if i % 4 == r) for r in range(4)}
    return Fleet(regions=regions, aggregators=("127.0.0.1:7000",))


def fill(slots: SlotMatrix, rng: np.random.Generator, failing: np.ndarray | None = None) -> None:
    """Realistic votes: each checker votes on about half the checks, 2 % noise.

    failing: checks every checker sees fail (their endpoints are down).
    """
    n = slots.check_count
    for r in range(slots.n_rows):
        bad = rng.random(n) < 0.02
        if failing is not None:
            bad ^= failing
        st = np.where(bad, codec.UNHEALTHY, codec.HEALTHY)
        st[rng.random(n) < 0.5] = codec.UNKNOWN
        slots.write(r, codec.pack(st.astype(np.uint8)))


def time_ticks(engine: TickEngine, slots: SlotMatrix, fresh: np.ndarray,
               repeat: int) -> list[float]:
    engine.compute(slots, fresh, 0)     # warm up: layout, buffers, caches
    out = []
    for i in range(repeat):
        t = time.perf_counter()
        engine.compute(slots, fresh, 1000 * (i + 1))
        out.append(time.perf_counter() - t)
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


def line(label: str, checkers: int, checks: int, secs: list[float]) -> str:
    med, best = statistics.median(secs), min(secs)
    return (f"{label:<28} checkers={checkers:<4} checks={checks:<8} "
            f"tick median {med * 1e3:7.2f} ms  min {best * 1e3:7.2f} ms  "
            f"{checkers * checks / med / 1e9:5.2f} G check-states/s (median), "
            f"{checkers * checks / best / 1e9:5.2f} best")


def paths() -> list[bool]:
    return [False, True] if tick_kernel.KERNEL is not None else [False]


def name(compiled: bool) -> str:
    return "compiled" if compiled else "python"


def bandwidth_bound(slots: SlotMatrix, repeat: int) -> float:
    """Best time to read the slot matrix's bytes once (numpy's vectorised sum).

    Twice: warm (the bytes were just read, so they may sit in a last-level
    cache as large as the matrix) and cold (after streaming through a
    64 MB buffer first, so they come from memory). Returns the warm rate.
    """
    words = slots.words
    words.sum()
    warm = min(timed(words.sum) for _ in range(max(repeat, 10)))
    junk = np.ones(8 << 20, np.uint64)
    cold = []
    for _ in range(max(3, repeat // 4)):
        junk.sum()
        cold.append(timed(words.sum))
    rates = []
    for label, best in (("warm", warm), ("cold", min(cold))):
        rate = slots.n_rows * slots.check_count / best
        rates.append(rate)
        print(f"{'bandwidth bound, ' + label:<28} checkers={slots.n_rows:<4} "
              f"checks={slots.check_count:<8} read {words.nbytes / 1e6:.0f} MB in "
              f"{best * 1e3:.2f} ms = {words.nbytes / best / 1e9:.1f} GB/s: "
              f"{rate / 1e9:.1f} G check-states/s; 3x of it: {rate / 3e9:.1f} G/s", flush=True)
    return rates[0]


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def in_process(repeat: int) -> None:
    rng = np.random.default_rng(1)
    for checkers, checks in SIZES:
        registry, fleet = bench_registry(checks), bench_fleet(checkers)
        slots = SlotMatrix(len(fleet.checker_ids), checks)
        fill(slots, rng)
        fresh = np.ones(checkers, bool)
        bound = bandwidth_bound(slots, repeat)
        for compiled in paths():
            engine = TickEngine(registry, fleet, compiled=compiled)
            quiet = time_ticks(engine, slots, fresh, repeat)
            print(line(f"tick, {name(compiled)}", checkers, checks, quiet), flush=True)
        if (checkers, checks) != SIZES[-1]:
            continue
        for compiled in paths():
            interleaved = constant_work(registry, fleet, slots, rng, repeat, compiled)
            rate = checkers * checks / statistics.median(interleaved)
            best = checkers * checks / min(interleaved)
            print(f"goal {GOAL / 1e9:.0f} G check-states/s at ({checkers}, {checks}), "
                  f"{name(compiled)}, quiet: {rate / 1e9:.2f} G/s median, {best / 1e9:.2f} best "
                  f"= {100 * best / GOAL:.0f} % of goal; best tick {bound / best:.1f}x the "
                  f"warm bandwidth bound (stretch: 3x)", flush=True)
        remap_cost(TickEngine(registry, fleet), slots, repeat)


def constant_work(registry: Registry, fleet: Fleet, quiet_slots: SlotMatrix,
                  rng: np.random.Generator, repeat: int, compiled: bool) -> list[float]:
    """Quiet, storm and stale ticks interleaved, so machine noise hits all three alike.

    Storm: a random half of the endpoints fails, then recovers, tick after
    tick; about half the checks change every tick, in no pattern a branch
    predictor could follow. Stale: every seventh checker's snapshot is too
    old to vote.
    """
    checkers, checks = quiet_slots.n_rows, quiet_slots.check_count
    engines = {run: TickEngine(registry, fleet, compiled=compiled)
               for run in ("quiet", "storm", "stale")}
    storm_slots = SlotMatrix(checkers, checks)
    fill(storm_slots, rng, failing=rng.random(checks) < 0.5)
    calm = [bytes(quiet_slots.row(r)) for r in range(checkers)]
    failing = [bytes(storm_slots.row(r)) for r in range(checkers)]
    fresh = np.ones(checkers, bool)
    stale = fresh.copy()
    stale[::7] = False
    runs = {"quiet": (quiet_slots, fresh), "storm": (storm_slots, fresh),
            "stale": (quiet_slots, stale)}
    times: dict[str, list[float]] = {run: [] for run in runs}
    changed = []
    for run, (slots, mask) in runs.items():
        engines[run].compute(slots, mask, 0)
    rss_before = rss_mb()
    for i in range(repeat):
        for r in range(checkers):
            storm_slots.write(r, (calm if i % 2 == 0 else failing)[r])
        for run, (slots, mask) in runs.items():
            t = time.perf_counter()
            res = engines[run].compute(slots, mask, 1000 * (i + 1))
            times[run].append(time.perf_counter() - t)
            if run == "storm":
                changed.append(res.changed)
    path = name(compiled)
    labels = {"quiet": f"quiet, {path}",
              "storm": f"storm, {path} (~{statistics.median(changed) / 1e3:.0f}k chg)",
              "stale": f"stale, {path} ({checkers - int(stale.sum())} stale)"}
    for run in runs:
        print(line(labels[run], checkers, checks, times[run]), flush=True)
    print(f"{'process RSS over those ticks':<28} {rss_before:.0f} -> {rss_mb():.0f} MB "
          f"(the whole bench process: registry, two slot matrices, their copies, engines)",
          flush=True)
    base = statistics.median(times["quiet"])
    print(f"{'storm / quiet, stale / quiet':<28} "
          f"{statistics.median(times['storm']) / base:.2f}, "
          f"{statistics.median(times['stale']) / base:.2f} (median tick ratios)", flush=True)
    return times["quiet"]


def remap_cost(engine: TickEngine, slots: SlotMatrix, repeat: int) -> None:
    old_ids = list(engine.registry.ids)
    old_ids[0], old_ids[1] = old_ids[1], old_ids[0]   # a reordered previous registry
    remap = build_remap(old_ids, engine.registry)
    payload = bytes(slots.row(0))
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        remap(payload)
        times.append(time.perf_counter() - t)
    print(f"{'remap one snapshot (ingest)':<28} checks={slots.check_count:<8} "
          f"median {statistics.median(times) * 1e3:7.2f} ms", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=25, help="ticks timed per figure")
    p.add_argument("--no-flood", action="store_true", help="skip the server flood part")
    p.add_argument("--flood-seconds", type=float, default=10.0,
                   help="length of each flood phase (quiet, then flooded)")
    args = p.parse_args(argv)
    cpu = pin_one_core()
    kernel = tick_kernel.KERNEL
    print(f"pinned to cpu {cpu}; numpy {np.__version__}; {os.cpu_count()} cpus on this "
          f"machine; load average {os.getloadavg()[0]:.1f}; tick kernel: "
          f"{'compiled (' + kernel.isa() + ')' if kernel is not None else 'not built'}",
          flush=True)
    in_process(args.repeat)
    print(f"load average after the in-process ticks: {os.getloadavg()[0]:.1f}", flush=True)
    if not args.no_flood:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import aggregator_flood
        return aggregator_flood.run(seconds=args.flood_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
