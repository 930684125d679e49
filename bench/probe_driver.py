"""Drive the probers alone at a fixed rate and report their CPU cost.

This isolates the probe hot path from the rest of the checker (schedule,
thresholds, snapshots): N http or tcp checks against the given targets, each
probed once per interval on an even spread, for a bounded time. Prints one
JSON object: probes, results by reason, CPU seconds of this process and
probes per CPU-second. ``checker_bench.py --driver`` uses it; it is also the
quickest way to profile the probes:

    py-spy record -o probes.svg -- .venv/bin/python bench/probe_driver.py \\
        --targets 127.0.0.1:8081 --checks 5000 --rate 3000 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from healthplane.checker.probes import make_prober  # noqa: E402
from healthplane.proto.config.model import Check  # noqa: E402


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _sys() -> float:
    return os.times().system


async def drive(probers: list, rate: float, duration: float, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    reasons: collections.Counter[str] = collections.Counter()
    counted = [0]
    measuring = [False]

    def done(task: asyncio.Task) -> None:
        if measuring[0] and not task.cancelled():
            reasons[task.result().reason] += 1
            counted[0] += 1

    step = 1.0 / rate
    n = len(probers)
    start = loop.time()
    next_t = start
    i = 0
    end = start + warmup + duration
    cpu0 = wall0 = sys0 = 0.0
    pending: set[asyncio.Task] = set()
    while True:
        now = loop.time()
        if not measuring[0] and now >= start + warmup:
            measuring[0] = True
            cpu0, wall0, sys0 = _cpu(), time.monotonic(), _sys()
        if now >= end:
            break
        # Start every probe whose slot has come (an even spread at `rate`).
        while next_t <= now:
            t = loop.create_task(probers[i % n]())
            pending.add(t)
            t.add_done_callback(pending.discard)
            t.add_done_callback(done)
            i += 1
            next_t += step
        await asyncio.sleep(0.001)
    cpu = _cpu() - cpu0
    sys_cpu = _sys() - sys0
    wall = time.monotonic() - wall0
    for t in list(pending):
        t.cancel()
    return {"probes": counted[0], "cpu_s": round(cpu, 2), "sys_s": round(sys_cpu, 2),
            "wall_s": round(wall, 2),
            "probes_per_cpu_s": round(counted[0] / cpu) if cpu else 0,
            "reasons": dict(reasons.most_common(6))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", required=True, help="comma-separated HOST:PORT list")
    ap.add_argument("--checks", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=2500.0, help="probes per second")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--kind", choices=("http", "tcp"), default="http")
    ap.add_argument("--path", default="/health")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = ap.parse_args(argv)
    targets = [t.rsplit(":", 1) for t in args.targets.split(",")]
    probers = [
        make_prober(Check(id=f"c{i}", type=args.kind, host=targets[i % len(targets)][0],
                          port=int(targets[i % len(targets)][1]), path=args.path,
                          timeout=args.timeout, interval=max(1.0, args.checks / args.rate)),
                    allow_private=True)
        for i in range(args.checks)]
    coro = drive(probers, args.rate, args.duration, args.warmup)
    if args.loop == "uvloop":
        import uvloop
        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
