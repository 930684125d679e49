"""The DNS front beside the servers operators run: PowerDNS and Knot, fed by healthplane.

Starts a real fleet with deploy.launcher (probe targets, 3 regions x 1
checker, 1 aggregator and the DNS front, which is also the hidden primary of
the zone), then

* Knot DNS as a secondary of the front (NOTIFY, then IXFR),
* ``healthplane pdns-backend`` following the same aggregator, and two
  ``pdns_server`` processes in front of it: one with PowerDNS's default
  caches (``cache-ttl=20``, ``query-cache-ttl=20``, ``negquery-cache-ttl=60``)
  and one with every cache off (all three 0).

For each server it measures UDP queries per CPU-second of the server's own
processes (PowerDNS: pdns_server plus the backend) under the same load, and,
over ``--rounds`` failovers, the time from the endpoint's death to the
changed answer at that server. The zone ttl is 5 s; PowerDNS's default
caches (20 s) can hold an old answer longer than that.

Prints one line per figure::

    dns-servers front udp_queries_per_cpu_second 13500
    dns-servers front failover_p50_s 2.61

Servers whose binary is missing are skipped with a note. Usage:
``python bench/dns_servers_bench.py [--seconds 3] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import dns_bench  # noqa: E402
from detection_bench import SECONDARY, Poller, write_configs  # noqa: E402
from healthplane.deploy.launcher import Fleet, TargetsOptions, free_ports  # noqa: E402

from tests.aggregator.dns import secondaries  # noqa: E402

QUERIES = [("v0.bench.test.", "A"), ("nothing.bench.test.", "A"), ("bench.test.", "SOA")]


def cpu(pids: list[int]) -> float:
    return sum(dns_bench.cpu_seconds(p) for p in pids)


def per_cpu_second(port: int, pids: list[int], args: argparse.Namespace) -> float:
    """Blast UDP queries for args.seconds; answers per CPU-second of ``pids``."""
    dns_bench.QUERIES = QUERIES          # the load processes fork with it
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    workers = [mp.Process(target=dns_bench.blast,
                          args=(port, args.seconds, args.max_queries, args.window, out))
               for _ in range(args.clients)]
    before = cpu(pids)
    for w in workers:
        w.start()
    total = sum(out.get(timeout=args.seconds + 30) for _ in workers)
    used = cpu(pids) - before
    for w in workers:
        w.join(10)
    return total / used if used > 0 else float("nan")


def start_pdns(directory: Path, sock: str, port: int, caches: bool) -> subprocess.Popen[bytes]:
    directory.mkdir()
    ttls = ("20", "20", "60") if caches else ("0", "0", "0")
    (directory / "pdns.conf").write_text(
        f"launch=remote\nremote-connection-string=unix:path={sock},timeout=2000\n"
        f"local-address=127.0.0.1\nlocal-port={port}\nsocket-dir={directory}\n"
        "daemon=no\nguardian=no\nwrite-pid=no\ndisable-syslog=yes\nloglevel=3\n"
        f"cache-ttl={ttls[0]}\nquery-cache-ttl={ttls[1]}\nnegquery-cache-ttl={ttls[2]}\n")
    with open(directory / "pdns.log", "wb") as log:
        return subprocess.Popen([shutil.which("pdns_server") or "/usr/sbin/pdns_server",
                                 f"--config-dir={directory}"], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def answers(port: int, want: str, timeout: float) -> bool:
    poller = Poller(("127.0.0.1", port))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if poller.round(["v0.bench.test."]).get("v0.bench.test.") == want:
                return True
            time.sleep(0.05)
        return False
    finally:
        poller.close()


def failovers(fleet: Fleet, servers: dict[str, int], rounds: int,
              bound: float) -> dict[str, list[float]]:
    """Per server, the seconds from the victim's death to the secondary's value."""
    got: dict[str, list[float]] = {name: [] for name in servers}
    pollers = {name: Poller(("127.0.0.1", port)) for name, port in servers.items()}
    try:
        for _ in range(rounds):
            fleet.target_down("victim-0")
            died = time.monotonic()
            pending = set(servers)
            while pending and time.monotonic() < died + bound:
                for name in sorted(pending):
                    if pollers[name].round(["v0.bench.test."], 0.2).get(
                            "v0.bench.test.") == SECONDARY:
                        got[name].append(time.monotonic() - died)
                        pending.discard(name)
                time.sleep(0.01)
            fleet.target_up("*")
            for port in servers.values():   # everyone back on the primary first
                answers(port, "192.0.2.1", bound)
    finally:
        for p in pollers.values():
            p.close()
    return got


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="load time per server")
    p.add_argument("--rounds", type=int, default=3, help="failovers measured")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--max-queries", type=int, default=2_000_000)
    args = p.parse_args()
    d = Path(tempfile.mkdtemp(prefix="healthplane-dns-servers-"))
    cfg = argparse.Namespace(victims=1, checks=4, interval=1.0, failure_threshold=2,
                             steady_interval=5.0, report_interval=0.5, tick=0.5)
    control, knot_port, pdns_on, pdns_off = free_ports(4)
    checks, fleet_yaml, zone = write_configs(d, cfg, control)
    zone.write_text(zone.read_text().replace(
        "ttl: 5\n", "ttl: 5\nsoa: {refresh: 3600, retry: 5}\n"
        "nameservers: [{name: ns1.bench.test., address: 192.0.2.53}]\n"
        f'transfer: {{allow: ["127.0.0.1/32"], notify: ["127.0.0.1:{knot_port}"]}}\n', 1))
    bound = cfg.interval * cfg.failure_threshold + cfg.report_interval + cfg.tick + 1.0
    procs: list[subprocess.Popen[bytes]] = []
    with Fleet(checks, fleet_yaml, zone, run_dir=d / "run",
               targets=TargetsOptions(control=f"127.0.0.1:{control}")) as fleet:
        assert fleet.dns_address is not None and fleet.dns is not None
        servers: dict[str, tuple[int, list[int]]] = {
            "front": (fleet.dns_address[1], [fleet.dns.popen.pid])}
        if shutil.which("knotd") or os.path.exists("/usr/sbin/knotd"):
            (d / "knot").mkdir()
            knot = secondaries.knot(d / "knot", "bench.test.", fleet.dns_address[1], knot_port)
            procs.append(knot.proc)
            servers["knot-secondary"] = (knot_port, [knot.proc.pid])
        else:
            print("# knotd not installed: Knot skipped", flush=True)
        if shutil.which("pdns_server") or os.path.exists("/usr/sbin/pdns_server"):
            sock = str(d / "pdns.sock")
            backend = subprocess.Popen(
                [sys.executable, "-m", "healthplane", "pdns-backend", "--zone", str(zone),
                 "--aggregator", fleet.aggregator_addresses[0], "--socket", sock,
                 "--tick", str(cfg.tick)], stderr=subprocess.DEVNULL, start_new_session=True)
            procs.append(backend)   # type: ignore[arg-type]
            while not os.path.exists(sock) and backend.poll() is None:
                time.sleep(0.05)
            for name, port, caches in (("pdns-cache-on", pdns_on, True),
                                       ("pdns-cache-off", pdns_off, False)):
                proc = start_pdns(d / name, sock, port, caches)
                procs.append(proc)
                servers[name] = (port, [proc.pid, backend.pid])
        else:
            print("# pdns_server not installed: PowerDNS skipped", flush=True)
        try:
            for name, (port, _) in servers.items():
                if not answers(port, "192.0.2.1", 60):
                    print(f"# {name} never answered the primary; left out", flush=True)
            for name, (port, pids) in servers.items():
                rate = per_cpu_second(port, pids, args)
                print(f"dns-servers {name} udp_queries_per_cpu_second {rate:.0f}", flush=True)
            # PowerDNS's default caches hold an answer up to 20 s (cache-ttl,
            # query-cache-ttl) whatever the record ttl: wait that long too.
            got = failovers(fleet, {n: s[0] for n, s in servers.items()}, args.rounds,
                            4 * bound + 25)
            for name, samples in got.items():
                samples.sort()
                if samples:
                    print(f"dns-servers {name} failover_p50_s {samples[len(samples) // 2]:.2f} "
                          f"(max {samples[-1]:.2f}, {len(samples)} of {args.rounds} rounds)",
                          flush=True)
                else:
                    print(f"dns-servers {name} failover_p50_s none seen", flush=True)
            print(f"# detection bound {bound:.1f} s (interval x threshold + report + tick + 1)")
        finally:
            for proc in reversed(procs):
                stop_group(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
