"""Constant-cost detail and warm restarts: bytes on the wire, restart to first snapshot.

Two parts, each printing one line per figure:

1. **Bytes per check on the wire**, quiet and with every endpoint failing,
   from the ``CheckerSnapshot`` a real :class:`checker.runner.Checker`
   builds for ``--checks`` owned checks (probers that answer at once: "ok",
   or a long "tls error: ..." reason on every check). The probe detail is a
   fixed number of fixed-size entries, so both are the same size; its cost
   is printed on its own.
2. **Aggregator restart to its first published snapshot**: a real fleet
   (deploy.launcher: targets, three checkers, one aggregator with a snapshot
   file) on ``--checks`` checks; the aggregator is killed with SIGKILL and
   started again ``--rounds`` times, and Health.Get is asked every 5 ms
   from the spawn: the time to the first snapshot at all (marked warming)
   and to the first warm one (every checker heard, or one stale_after).

    python bench/warmstart_bench.py --checks 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from healthplane.checker.detail import DETAILS_PER_REPORT, REASON_BYTES  # noqa: E402
from healthplane.checker.metrics import CheckerMetrics  # noqa: E402
from healthplane.checker.probes.base import ProbeResult  # noqa: E402
from healthplane.checker.runner import Checker  # noqa: E402
from healthplane.deploy.launcher import Fleet, TargetsOptions, free_ports  # noqa: E402
from healthplane.proto.config.model import Check  # noqa: E402
from healthplane.proto.config.model import Fleet as FleetConfig  # noqa: E402
from healthplane.proto.config.version import make_registry  # noqa: E402
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb  # noqa: E402
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc  # noqa: E402

from healthplane.runtime.clock import FakeClock  # noqa: E402

BAD_DAY = "tls error: certificate verify failed: unable to get local issuer certificate"


async def _message_bytes(n: int, ok: bool) -> tuple[int, int, int]:
    """(whole message, states, details) bytes of the report after every check probed once."""
    clock = FakeClock()
    checks = [Check(id=f"c{i}", type="tcp", host="192.0.2.1", port=80, interval=1.0,
                    timeout=0.5, failure_threshold=1) for i in range(n)]
    registry = make_registry(checks)
    fleet = FleetConfig(regions={"r1": ("bench-1",)}, aggregators=("127.0.0.1:9",),
                        canaries=(), report_interval=1.0)
    result = ProbeResult(ok, 0.0123, "ok" if ok else BAD_DAY)

    def make_prober(check: Check, *, allow_private: bool):
        async def probe() -> ProbeResult:
            return result
        return probe

    checker = Checker(registry, fleet, "bench-1", clock=clock, make_prober=make_prober,
                      metrics=CheckerMetrics())
    task = asyncio.create_task(checker.run())
    await clock.advance(1.5)
    msg = checker.report_once()
    checker.stop()
    await clock.advance(1.0)
    await task
    details = sum(len(d.SerializeToString()) + 2 for d in msg.details)
    return len(msg.SerializeToString()), len(msg.states), details


def wire(n: int) -> None:
    quiet = asyncio.run(_message_bytes(n, True))
    storm = asyncio.run(_message_bytes(n, False))
    for name, (whole, states, details) in (("quiet", quiet), ("every_endpoint_failing", storm)):
        print(f"bytes_per_check_{name} {whole / n:.4f} ({whole}-byte message for {n} checks: "
              f"{states} of states, {details} of probe detail)")
    print(f"bytes_equal_quiet_and_failing {quiet[0] == storm[0]}")
    print(f"probe_detail_fixed_cost_bytes {quiet[2]} per report ({DETAILS_PER_REPORT} entries "
          f"of {quiet[2] // max(1, DETAILS_PER_REPORT)} bytes, reasons padded to "
          f"{REASON_BYTES}), whatever the number of checks")


def _configs(d: Path, n: int, control: int) -> tuple[Path, Path]:
    ports = free_ports(9, exclude={control})
    lines = ["checks:"]
    for i in range(n):
        lines.append(f"  - {{id: c{i}, type: tcp, host: 127.0.0.1, port: {ports[i % 8]}, "
                     "interval: 2, timeout: 1, failure_threshold: 2}")
    checks = d / "checks.yaml"
    checks.write_text("\n".join(lines) + "\n")
    fleet = d / "fleet.yaml"
    fleet.write_text("regions:\n  us-east: [use1-a]\n  eu-west: [euw1-a]\n  ap-south: [aps1-a]\n"
                     f'aggregators: ["127.0.0.1:{ports[8]}"]\nreport_interval: 0.5\ntick: 0.5\n'
                     f'stale_after: 1.5\nallow_private_targets: true\n'
                     f'canaries: ["127.0.0.1:{control}"]\n')
    return checks, fleet


def _get(f: Fleet, address: str) -> pb.HealthSnapshot | None:
    try:
        with f.channel(address) as channel:
            return pb_grpc.HealthStub(channel).Get(pb.GetRequest(), timeout=0.5)
    except grpc.RpcError:
        return None


def restarts(n: int, rounds: int) -> None:
    control = free_ports(1)[0]
    with tempfile.TemporaryDirectory(prefix="hp-warm-") as tmp:
        checks, fleet_yaml = _configs(Path(tmp), n, control)
        with Fleet(checks, fleet_yaml, None, run_dir=Path(tmp) / "run",
                   targets=TargetsOptions(control=f"127.0.0.1:{control}")) as f:
            address = f.aggregator_addresses[0]
            deadline = time.monotonic() + 60
            while (got := _get(f, address)) is None or got.warming:
                if time.monotonic() > deadline:
                    print("error: the aggregator never became warm", file=sys.stderr)
                    return
                time.sleep(0.05)
            time.sleep(3.0)   # every checker streaming in steady state
            firsts, warms = [], []
            for _ in range(rounds):
                f.kill_aggregator(0, signal.SIGKILL)
                t0 = time.monotonic()
                f.start_aggregator(0, wait=False)
                first = warm = None
                while warm is None and time.monotonic() - t0 < 30:
                    got = _get(f, address)
                    if got is not None:
                        now = time.monotonic() - t0
                        first = now if first is None else first
                        if not got.warming:
                            warm = now
                    time.sleep(0.005)
                if first is not None and warm is not None:
                    firsts.append(first)
                    warms.append(warm)
                time.sleep(2.0)
    if not warms:
        print("error: no restart measured", file=sys.stderr)
        return
    print(f"aggregator_restart_to_first_snapshot_s {min(firsts):.2f}..{max(firsts):.2f} "
          f"({len(firsts)} restarts, {n} checks, from spawn; marked warming)")
    print(f"aggregator_restart_to_first_warm_snapshot_s {min(warms):.2f}..{max(warms):.2f} "
          f"(stale_after 1.5 s; every checker heard ends the warm-up sooner)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checks", type=int, default=1000)
    p.add_argument("--wire-checks", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    wire(args.wire_checks)
    restarts(args.checks, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
