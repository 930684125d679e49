"""DNS queries per second and per CPU-second of a real ``healthplane dns`` process.

Starts ``healthplane dns`` on loopback, then blasts UDP queries at it from
separate load processes (raw sockets, a fixed window of queries in flight
each), and reads the server's CPU time from /proc before and after. Every
loop is bounded by both a query count and a time limit.

Snapshot sources:

* ``failopen`` (always): the front is pointed at an aggregator address where
  nothing listens and started with ``--stale-after 1``, so it serves the
  fail-open answers while its consumer keeps retrying in the background.
* ``aggregator`` (when ``healthplane aggregator`` starts): a real aggregator
  with a generated registry of ``--checks`` checks and no checkers, so the
  front also takes one snapshot per tick and rebuilds its answers.

Each case runs once per query path (``--paths``), so one run gives the
before and after: ``slow`` starts the front with ``HEALTHPLANE_DNS_FAST_PATH=0``
(dnspython parses every query), ``fast-python`` with the prebuilt responses
but ``HEALTHPLANE_PURE_PYTHON=1`` (asyncio's datagram protocol), and
``fast-compiled`` with the C loop (recvmmsg, the fast path, sendmmsg) when
the extension is built (the front's start-up log says which path it runs).
Prints one line per figure::

    dns udp failopen slow queries_per_second 10234
    dns udp failopen slow queries_per_cpu_second 11020

Usage: ``python bench/dns_bench.py [--seconds 5] [--clients 1] [--window 64] [--tcp]
[--paths slow,fast-python,fast-compiled]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dns.message

ROOT = Path(__file__).resolve().parent.parent
ZONE = ROOT / "deploy" / "examples" / "zone.yaml"
QUERIES = [("www.example.test.", "A"), ("api.example.test.", "A"),
           ("img.example.test.", "A"), ("static.example.test.", "A"),
           ("www.example.test.", "AAAA"), ("nothing.example.test.", "A")]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start(cmd: list[str], pattern: str, timeout: float = 30.0,
          env: dict[str, str] | None = None,
          seen: list[str] | None = None) -> tuple[subprocess.Popen[str], int]:
    """Start a healthplane process and wait for the log line giving its port
    (appended to seen, when given)."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env={**os.environ, **(env or {})})
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if not ready:
            continue
        line = proc.stderr.readline()
        if not line:
            break
        if m := re.search(pattern, line):
            if seen is not None:
                seen.append(line)
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError(f"{cmd[3]} did not start: {proc.stderr.read()[-2000:]}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def blast(port: int, seconds: float, max_queries: int, window: int,
          out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One load process: keep `window` queries in flight for `seconds`; report answers."""
    wires = []
    for i, (name, rdtype) in enumerate(QUERIES):
        q = dns.message.make_query(name, rdtype)
        q.id = i
        wires.append(q.to_wire())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(0.2)
    sent = received = 0
    for k in range(window):
        sock.send(wires[k % len(wires)])
        sent += 1
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sent < max_queries:
        try:
            sock.recv(4096)
            received += 1
        except TimeoutError:
            # Lost in a full socket buffer: put the window back to strength.
            for k in range(window):
                sock.send(wires[k % len(wires)])
                sent += 1
            continue
        sock.send(wires[sent % len(wires)])
        sent += 1
    out.put(received)


def blast_tcp(port: int, seconds: float, max_queries: int, window: int,
              out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One load process over one TCP connection, `window` queries pipelined."""
    frames = []
    for i, (name, rdtype) in enumerate(QUERIES):
        q = dns.message.make_query(name, rdtype)
        q.id = i
        w = q.to_wire()
        frames.append(len(w).to_bytes(2, "big") + w)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = sock.makefile("rb")
    sent = received = 0
    sock.sendall(b"".join(frames[k % len(frames)] for k in range(window)))
    sent += window
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sent < max_queries:
        size = int.from_bytes(stream.read(2), "big")
        stream.read(size)
        received += 1
        sock.sendall(frames[sent % len(frames)])
        sent += 1
    sock.close()
    out.put(received)


def measure(port: int, pid: int, args: argparse.Namespace,
            transport: str = "udp") -> tuple[float, float]:
    """Blast for args.seconds; return (answers per second, answers per server CPU-second)."""
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    target = blast if transport == "udp" else blast_tcp
    workers = [mp.Process(target=target, args=(port, args.seconds, args.max_queries,
                                               args.window, out)) for _ in range(args.clients)]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    for w in workers:
        w.start()
    total = sum(out.get(timeout=args.seconds + 30) for _ in workers)
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    for w in workers:
        w.join(10)
    return total / elapsed, total / cpu if cpu > 0 else float("nan")


def dns_cmd(aggregators: list[str], zone: Path, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "healthplane", "dns", "--zone", str(zone),
           "--listen", "127.0.0.1:0", "--log-level", "info"]
    for a in aggregators:
        cmd += ["--aggregator", a]
    return cmd + extra


def scrape(port: int) -> dict[str, str]:
    """The front's own metrics, to show which snapshot source it was really on."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {m.group(1): m.group(2) for m in re.finditer(
        r"^(healthplane_dns_\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


# Which query path the front runs: the environment it starts with.
PATHS = {"slow": {"HEALTHPLANE_DNS_FAST_PATH": "0"},
         "fast-python": {"HEALTHPLANE_DNS_FAST_PATH": "1", "HEALTHPLANE_PURE_PYTHON": "1"},
         "fast-compiled": {"HEALTHPLANE_DNS_FAST_PATH": "1", "HEALTHPLANE_PURE_PYTHON": "0"}}


def run_case(label: str, aggregators: list[str], zone: Path, args: argparse.Namespace,
             extra: tuple[str, ...] = ()) -> None:
    for path in args.paths:
        run_path(f"{label} {path}", aggregators, zone, args, PATHS[path], extra)


def run_path(label: str, aggregators: list[str], zone: Path, args: argparse.Namespace,
             env: dict[str, str], extra: tuple[str, ...]) -> None:
    mport = free_port()
    seen: list[str] = []
    proc, port = start(dns_cmd(aggregators, zone, ["--metrics", f"127.0.0.1:{mport}", *extra]),
                       r"listening on 127\.0\.0\.1:(\d+) \(udp\+tcp\)", env=env, seen=seen)
    path = re.search(r"fast_path=(\w+)", seen[0])
    print(f"# {label}: the front runs fast_path={path.group(1) if path else '?'}", flush=True)
    try:
        time.sleep(2.0)   # let the consumer settle (first snapshots or first retries)
        deadline = time.monotonic() + 30
        # Following an aggregator: measure answers from its health, not the
        # SERVFAIL of a front still waiting for a warm snapshot.
        while (not label.startswith("failopen") and time.monotonic() < deadline
               and float(scrape(mport)["healthplane_dns_snapshot_age_seconds"]) < 0):
            time.sleep(0.5)
        before = scrape(mport)
        qps, per_cpu = measure(port, proc.pid, args)
        after = scrape(mport)
        tcp = measure(port, proc.pid, args, "tcp") if args.tcp else None
    finally:
        stop(proc)
    rebuilt = float(after["healthplane_dns_answers_rebuilt_total"]) - \
        float(before["healthplane_dns_answers_rebuilt_total"])
    current = [k for k in after if k.startswith("healthplane_dns_aggregator_current{")]
    rcodes = ", ".join(
        f"{k.split(chr(34))[1]} {float(v) - float(before.get(k, 0)):.0f}"
        for k, v in sorted(after.items())
        if k.startswith("healthplane_dns_queries_total{") and float(v) > float(before.get(k, 0)))
    print(f"# {label}: responses during the UDP run by rcode: {rcodes or 'none'}", flush=True)
    print(f"# {label}: answers rebuilt {rebuilt:.0f} times during the run, snapshot age "
          f"{float(after['healthplane_dns_snapshot_age_seconds']):.1f} s (-1: none yet), "
          f"following {current[0].split('=')[1].rstrip('}') if current else 'no aggregator'}",
          flush=True)
    print(f"dns udp {label} queries_per_second {qps:.0f}", flush=True)
    print(f"dns udp {label} queries_per_cpu_second {per_cpu:.0f}", flush=True)
    if tcp is not None:
        print(f"dns tcp {label} queries_per_second {tcp[0]:.0f}", flush=True)
        print(f"dns tcp {label} queries_per_cpu_second {tcp[1]:.0f}", flush=True)


def write_fleet(tmp: Path, checks: int, agg_port: int) -> tuple[Path, Path, Path]:
    """A registry of `checks` checks (the zone's first), a one-checker fleet, the zone."""
    ids = ["web-1", "web-2", "web-3", "web-4", "api-primary", "api-secondary"]
    ids += [f"filler-{i}" for i in range(max(0, checks - len(ids)))]
    lines = ["checks:"]
    for i, cid in enumerate(ids):
        lines += [f"  - id: {cid}", "    type: tcp", "    host: 192.0.2.1",
                  f"    port: {1000 + i % 60000}", "    interval: 10"]
    checks_path = tmp / "checks.yaml"
    checks_path.write_text("\n".join(lines) + "\n")
    fleet_path = tmp / "fleet.yaml"
    fleet_path.write_text(
        "regions:\n  bench: [bench-a]\n"
        f"aggregators: [\"127.0.0.1:{agg_port}\"]\ntick: 1.0\n")
    return checks_path, fleet_path, ZONE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="load time per case (default 5)")
    p.add_argument("--clients", type=int, default=1, help="load processes (default 1)")
    p.add_argument("--window", type=int, default=64, help="queries in flight per client")
    p.add_argument("--max-queries", type=int, default=2_000_000,
                   help="stop a client after this many queries (default 2,000,000)")
    p.add_argument("--checks", type=int, default=1000,
                   help="registry size for the aggregator case (default 1000)")
    p.add_argument("--skip-aggregator", action="store_true")
    p.add_argument("--tcp", action="store_true",
                   help="also measure DNS over TCP (one pipelined connection per client)")
    p.add_argument("--paths", default=",".join(PATHS),
                   help="query paths to measure, comma-separated: slow (dnspython for "
                   "every query), fast-python (prebuilt responses, asyncio's UDP protocol), "
                   "fast-compiled (prebuilt responses, the C recvmmsg loop); default all")
    args = p.parse_args()
    args.paths = [x for x in args.paths.split(",") if x]
    if unknown := set(args.paths) - PATHS.keys():
        p.error(f"--paths: unknown {', '.join(sorted(unknown))}")

    # Nothing listens at the aggregator address: after --stale-after the front
    # fails open and answers every value (before it, SERVFAIL).
    run_case("failopen", [f"127.0.0.1:{free_port()}"], ZONE, args, ("--stale-after", "1"))
    if args.skip_aggregator:
        return 0
    with tempfile.TemporaryDirectory() as tmpdir:
        agg_port = free_port()
        checks, fleet, zone = write_fleet(Path(tmpdir), args.checks, agg_port)
        try:
            agg, _ = start([sys.executable, "-m", "healthplane", "aggregator", "--checks",
                            str(checks), "--fleet", str(fleet), "--listen",
                            f"127.0.0.1:{agg_port}"], r"listening on [^ ]+:(\d+)")
        except (RuntimeError, OSError) as exc:
            print(f"# aggregator case skipped: {str(exc).splitlines()[0]}", flush=True)
            return 0
        try:
            run_case(f"aggregator{args.checks}", [f"127.0.0.1:{agg_port}"], zone, args)
        finally:
            stop(agg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
