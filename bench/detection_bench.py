"""Detection latency: from an endpoint's death to a changed DNS answer.

Starts a real fleet with deploy.launcher (probe targets, 3 regions x 1
checker, 1 aggregator, the DNS front), with a registry of --checks checks:
--victims http checks on their own ports, each the primary of a failover
record ``vN.bench.test`` whose secondary is a steady check, and the rest
tcp checks against a few steady ports. Once every record answers its
primary, each round takes every victim down at once (through the targets'
control API, one timestamp per victim), polls the DNS front until every
record answers its secondary, and brings the victims back.

Prints one line per figure. The bound the contract promises is
interval x failure_threshold + report_interval + tick + 1 s.

    python bench/detection_bench.py --victims 50 --checks 1000 --rounds 2
"""

from __future__ import annotations

import argparse
import re
import select
import socket
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import dns.exception
import dns.message
import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from healthplane.deploy.launcher import (  # noqa: E402
    Fleet,
    TargetsOptions,
    free_ports,
    interrupt_on_sigterm,
)
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb  # noqa: E402
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc  # noqa: E402

PRIMARY, SECONDARY = "192.0.2.1", "192.0.2.2"
STEADY_PORTS = 8


def write_configs(d: Path, args: argparse.Namespace, control: int) -> tuple[Path, Path, Path]:
    ports = iter(free_ports(args.victims + STEADY_PORTS + 1, exclude={control}))
    lines = ["checks:"]
    for i in range(args.victims):
        lines.append(f"  - {{id: victim-{i}, type: http, host: 127.0.0.1, port: {next(ports)}, "
                     f"path: /health, interval: {args.interval}, timeout: 0.5, "
                     f"failure_threshold: {args.failure_threshold}}}")
    steady = [next(ports) for _ in range(STEADY_PORTS)]
    for i in range(args.checks - args.victims):
        lines.append(f"  - {{id: steady-{i}, type: tcp, host: 127.0.0.1, "
                     f"port: {steady[i % STEADY_PORTS]}, interval: {args.steady_interval}, "
                     f"timeout: 1, failure_threshold: {args.failure_threshold}}}")
    checks = d / "checks.yaml"
    checks.write_text("\n".join(lines) + "\n")
    fleet = d / "fleet.yaml"
    fleet.write_text(
        "regions:\n  us-east: [use1-a]\n  eu-west: [euw1-a]\n  ap-south: [aps1-a]\n"
        f'checkers_per_region: 1\naggregators: ["127.0.0.1:{next(ports)}"]\n'
        f"report_interval: {args.report_interval}\ntick: {args.tick}\n"
        f"stale_after: {3 * args.report_interval}\nallow_private_targets: true\n"
        f'canaries: ["127.0.0.1:{control}"]\n')
    records = []
    for i in range(args.victims):
        records.append(
            f"  - name: v{i}.bench.test.\n    type: A\n    policy: failover\n"
            f"    primary: {{value: {PRIMARY}, check: victim-{i}}}\n"
            f"    secondary: {{value: {SECONDARY}, check: steady-{i}}}\n")
    zone = d / "zone.yaml"
    zone.write_text("zone: bench.test.\nttl: 5\nrecords:\n" + "".join(records))
    return checks, fleet, zone


class Poller:
    """Asks the DNS front about many names at once over one UDP socket.

    Every name is queried in each round and the replies are matched by id,
    so one round costs about one round trip, not one per name, and the
    timing resolution does not depend on how many endpoints are measured.
    Each reply is timed when it is read, not when its round ends, and the
    receive buffer holds a whole round: a reply dropped there would hold the
    round open until its timeout and add that to every sample.
    """

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    def round(self, names: list[str], timeout: float = 0.2
              ) -> dict[str, tuple[str | None, float]]:
        """One query per name; name -> (its single A value or None, when read)."""
        queries: dict[int, str] = {}
        for name in names:
            q = dns.message.make_query(name, "A")
            queries[q.id] = name
            self.sock.sendto(q.to_wire(), self.address)
        out: dict[str, tuple[str | None, float]] = {}
        deadline = time.monotonic() + timeout
        while len(out) < len(queries):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                break
            data = self.sock.recv(65535)
            when = time.monotonic()
            try:
                reply = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            name = queries.get(reply.id)
            if name is not None:
                values = [item.address for rrset in reply.answer for item in rrset]
                out[name] = (values[0] if len(values) == 1 else None, when)
        return out


def wait_all(poller: Poller, names: list[str], want: str, deadline: float,
             since: dict[str, float] | None = None) -> dict[str, float]:
    """Poll until every name answers want; return name -> seconds since its since[]."""
    pending = set(names)
    got: dict[str, float] = {}
    while pending and time.monotonic() < deadline:
        replies = poller.round(sorted(pending))
        for name, (value, when) in replies.items():
            if value == want:
                got[name] = when - (since or {}).get(name, when)
                pending.discard(name)
        time.sleep(0.01)
    return got


def victims_healthy(fleet: Fleet, count: int) -> bool:
    """True when the aggregator has decided every victim healthy (not merely unknown)."""
    with fleet.channel(fleet.aggregator_addresses[0]) as channel:
        try:
            reply = pb_grpc.HealthStub(channel).Query(
                pb.QueryRequest(check_ids=[f"victim-{i}" for i in range(count)]), timeout=2)
        except grpc.RpcError:
            return False
    return all(c.status == pb.STATUS_HEALTHY for c in reply.checks)


_CHANGE = re.compile(r'^ts=(\S+) .*msg="status change" check=(\S+) old=\S+ new=unhealthy')


def aggregator_latencies(log: Path, died: dict[str, float]) -> list[float]:
    """Seconds from each death (wall clock) to the aggregator's first unhealthy line after it."""
    first: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = _CHANGE.match(line)
        if m is None or m.group(2) not in died or m.group(2) in first:
            continue
        when = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
        if when >= died[m.group(2)] - 0.01:
            first[m.group(2)] = when - died[m.group(2)]
    return list(first.values())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--victims", type=int, default=50, help="endpoints killed per round")
    p.add_argument("--checks", type=int, default=1000, help="checks in the registry")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--interval", type=float, default=1.0, help="victims' probe interval")
    p.add_argument("--steady-interval", type=float, default=5.0)
    p.add_argument("--failure-threshold", type=int, default=2)
    p.add_argument("--report-interval", type=float, default=0.5)
    p.add_argument("--tick", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=240.0, help="give up after this long")
    p.add_argument("--show-samples", action="store_true", help="also print every sample")
    args = p.parse_args(argv)
    if not 0 < args.victims <= args.checks - args.victims:
        p.error("need 0 < --victims <= half of --checks (each victim needs a steady secondary)")
    interrupt_on_sigterm()
    bound = args.interval * args.failure_threshold + args.report_interval + args.tick + 1.0
    give_up = time.monotonic() + args.max_seconds
    d = Path(tempfile.mkdtemp(prefix="healthplane-detection-"))
    control = free_ports(1)[0]
    checks, fleet_yaml, zone = write_configs(d, args, control)
    names = [f"v{i}.bench.test." for i in range(args.victims)]
    samples: list[float] = []
    to_aggregator: list[float] = []
    missed = 0
    t0 = time.monotonic()
    with Fleet(checks, fleet_yaml, zone, run_dir=d / "run",
               targets=TargetsOptions(control=f"127.0.0.1:{control}")) as fleet:
        assert fleet.dns_address is not None
        poller = Poller(fleet.dns_address)
        print(f"fleet_start_s {time.monotonic() - t0:.2f}", flush=True)
        while not victims_healthy(fleet, args.victims) and time.monotonic() < give_up:
            time.sleep(0.2)
        ready = wait_all(poller, names, PRIMARY, give_up)
        if len(ready) < len(names):
            print(f"error: only {len(ready)} of {len(names)} records answered their primary",
                  file=sys.stderr)
            return 1
        print(f"converged_s {time.monotonic() - t0:.2f}", flush=True)
        for _ in range(args.rounds):
            died: dict[str, float] = {}
            died_wall: dict[str, float] = {}
            for i, name in enumerate(names):
                fleet.target_down(f"victim-{i}")
                died[name] = time.monotonic()
                died_wall[f"victim-{i}"] = time.time()
            deadline = min(give_up, time.monotonic() + 4 * bound)
            got = wait_all(poller, names, SECONDARY, deadline, since=died)
            samples += got.values()
            missed += len(names) - len(got)
            to_aggregator += aggregator_latencies(fleet.run_dir / "aggregator-0.log", died_wall)
            fleet.target_up("*")
            back = min(give_up, time.monotonic() + 4 * bound)
            while not victims_healthy(fleet, args.victims) and time.monotonic() < back:
                time.sleep(0.2)
            wait_all(poller, names, PRIMARY, back)
            if time.monotonic() > give_up:
                break
        poller.close()
    if not samples:
        print("error: no detection observed", file=sys.stderr)
        return 1
    over = sum(s > bound for s in samples)
    print(f"detection_samples {len(samples)} (registry {args.checks} checks, "
          f"{args.victims} victims x {args.rounds} rounds, missed {missed})")
    print(f"detection_latency_p50_s {percentile(samples, 50):.2f}")
    print(f"detection_latency_p99_s {percentile(samples, 99):.2f}")
    print(f"detection_latency_max_s {max(samples):.2f}")
    print(f"detection_bound_s {bound:.2f} (interval {args.interval} x threshold "
          f"{args.failure_threshold} + report {args.report_interval} + tick {args.tick} + 1)")
    print(f"detection_over_bound {over} of {len(samples)}")
    tight = bound - 0.5
    print(f"detection_p99_within_tight_bound {percentile(samples, 99) <= tight} "
          f"(p99 {percentile(samples, 99):.2f} s vs interval x threshold + report + tick "
          f"+ 0.5 = {tight:.2f} s)")
    if to_aggregator:
        print(f"aggregator_transition_p50_s {percentile(to_aggregator, 50):.2f} (death to the "
              f"aggregator's status-change log line; the rest is the DNS front)")
        print(f"aggregator_transition_p99_s {percentile(to_aggregator, 99):.2f}")
    if args.show_samples:
        print("detection_samples_s " + " ".join(f"{x:.2f}" for x in sorted(samples)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
