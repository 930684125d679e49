"""Checker benchmark: the real `healthplane checker` process against nginx, and HAProxy.

    .venv/bin/python bench/checker_bench.py            # 5,000 and 50,000 checks
    .venv/bin/python bench/checker_bench.py --checks 5000 --duration 10 --profile
    .venv/bin/python bench/checker_bench.py --paths python   # the pure-Python probers only
    .venv/bin/python bench/checker_bench.py --shape distinct --scenarios quiet  # a host per check

For each N it writes a registry of N http checks against loopback targets
(interval N / rate, so the probe rate is --rate per second; timeout 1 s),
runs `healthplane checker --checks C --fleet F --id bench-1 --metrics ...`
as its own process and measures, over a window after warm-up:

* probes per CPU-second of the checker process (user + sys from /proc),
* schedule lateness p50/p99 (from the checker's lateness histogram),
* RSS, and bytes per snapshot (received by a gRPC Ingest sink run here),

on each probe path (--paths: the compiled probe engine, and the pure-Python
probers that HEALTHPLANE_PURE_PYTHON=1 forces; each line says which, and
the checker's own "probe engine:" log line is checked against it), in
three scenarios: quiet (nginx answers 200), refusing (closed ports:
the kernel answers RST) and timing out (a listener that accepts and never
answers, bench/blackhole.py, in its own process). Then HAProxy probes the
same quiet targets (`option httpchk`, `check inter`, one backend server per
check, a new connection per check, one thread) and its checks per
CPU-second and our ratio to it are printed per path. With two check
counts, RSS per check beyond the base is the growth between them. Check counts for HAProxy come
from nginx's stub_status request counter.

nginx and haproxy are Debian packages; the benchmark installs them with
apt-get when they are missing. Every process it starts is stopped by PID.
Output is one line per figure. The machine is shared with whatever else
runs on it: figures are noisy, run twice before believing a difference.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb  # noqa: E402
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TARGET_PORTS = 8          # nginx / blackhole ports the checks are spread over
METRIC = "healthplane_checker_"
# Above this share of the window spent waiting for a CPU, figures are flagged.
# Seen on a shared 2-core machine: 2-20 % with other processes using ~80 % of
# it and no slot missed; 45-65 % when they starved the checker into missing
# slots.
CONTENDED_WAIT_PCT = 30.0


def out(line: str) -> None:
    print(f"checker_bench {line}", flush=True)


# -- processes ------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def refusing_ports(n: int) -> tuple[list[int], list[socket.socket]]:
    """Ports where every connect is refused, held for the whole run.

    Each is bound but not listening: the kernel answers a SYN with RST, and
    while the socket is open no other process (a test server asking for port
    0, say) can listen there, and no outgoing connection takes it as its
    local port. A port that is merely free at the start can be taken
    mid-run and turn refusals into timeouts.
    """
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    return [s.getsockname()[1] for s in socks], socks


def cpu_seconds(pid: int) -> float:
    """user + sys of a process (all its threads), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sys_cpu_seconds(pid: int) -> float:
    """The sys part of cpu_seconds: time in the kernel (syscalls, loopback TCP)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[12]) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_queue_wait(pid: int) -> float:
    """Seconds the process's main thread (the event loop) was runnable but not running.

    From /proc/PID/task/PID/schedstat (run, wait, timeslices in ns). High
    wait means other processes held the CPUs: the checker was starved, and
    its lateness and missed slots then measure the machine, not the checker.
    """
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_busy_seconds() -> float:
    """CPU-seconds used by everything on the machine (all CPUs), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICK


def tcp_counters() -> dict[str, int]:
    """TcpExt counters (listen-queue overflows, SYN retransmits) from /proc/net/netstat."""
    lines = [ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines()
             if ln.startswith("TcpExt:")]
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=False)}


def tcp_sockets() -> str:
    """The kernel's TCP socket counts (in use, time-wait, ...), from /proc/net/sockstat."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            f = line.split()[1:]
            d = dict(zip(f[::2], f[1::2], strict=False))
            return f"in use {d.get('inuse', '?')}, time-wait {d.get('tw', '?')}"
    return "unknown"


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a process we started, by its PID, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def ensure_packages() -> None:
    missing = [pkg for binary, pkg in (("nginx", "nginx"), ("haproxy", "haproxy"))
               if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists()]
    if not missing:
        return
    out(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise SystemExit(f"checker_bench: {' '.join(cmd)} failed: "
                             f"{result.stderr.strip().splitlines()[-1:]}")


def binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Nginx:
    """Our own nginx: one worker, 200 "ok" on every target port, stub_status."""

    def __init__(self, work: Path, ports: list[int], status_port: int) -> None:
        self.work, self.ports, self.status_port = work, ports, status_port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        w = self.work
        listens = "\n".join(f"    listen 127.0.0.1:{p} backlog=4096;" for p in self.ports)
        temps = " ".join(f"{k}_temp_path {w}/{k};" for k in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (w / "nginx.conf").write_text(f"""
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  {temps}
  server {{
{listens}
    location / {{ return 200 "ok\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{self.status_port};
    location / {{ stub_status; }}
  }}
}}
""")
        self.proc = subprocess.Popen([binary("nginx"), "-p", str(w),
                                      "-e", str(w / "nginx-error.log"),
                                      "-c", str(w / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.status_port, self.proc)

    def requests(self) -> int:
        """Requests nginx has served so far (stub_status; includes this one)."""
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/",
                                      timeout=5).read().decode()
        return int(body.splitlines()[2].split()[2])

    def stop(self) -> None:
        stop(self.proc, signal.SIGQUIT)   # graceful: the master stops its worker


class Sink(pb_grpc.IngestServicer):
    """A gRPC Ingest server that only measures what checkers send."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshots = 0
        self.states_bytes = 0
        self.message_bytes = 0

    def Report(self, request_iterator, context):  # noqa: N802 - gRPC method name
        n = 0
        for snap in request_iterator:
            with self.lock:
                self.snapshots += 1
                self.states_bytes = len(snap.states)
                self.message_bytes = snap.ByteSize()
            n += 1
        return pb.ReportSummary(accepted=n)

    def start(self) -> int:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_IngestServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return port

    def stop(self) -> None:
        self.server.stop(None)


# -- the checker ------------------------------------------------------------------

def write_configs(work: Path, n: int, rate: float, ports: list[int], sink_port: int,
                  timeout: float, shape: str = "same") -> tuple[Path, Path, float]:
    interval = n / rate
    if not 1 <= interval <= 300:
        raise SystemExit(f"checker_bench: {n} checks at {rate}/s need interval {interval:g}s, "
                         "outside 1..300")
    lines = ["checks:"]
    for i in range(n):
        # "distinct": a registry of the usual shape, where every check has a
        # longer id and a virtual host (so a request) of its own.
        ident, vhost = (f"c{i}", "") if shape == "same" else (
            f"web-{i:06d}.eu-west.example", f", hostname: web-{i:06d}.eu-west.example")
        lines.append(f"  - {{id: {ident}, type: http, host: 127.0.0.1, "
                     f"port: {ports[i % len(ports)]}{vhost},"
                     f" path: /health, interval: {interval:g}, timeout: {timeout:g}}}")
    checks = work / f"checks-{n}.yaml"
    checks.write_text("\n".join(lines) + "\n")
    fleet = work / "fleet.yaml"
    fleet.write_text(f"""regions:
  bench: [bench-1]
aggregators: ["127.0.0.1:{sink_port}"]
report_interval: 1.0
allow_private_targets: true
""")
    return checks, fleet, interval


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(METRIC):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def probes_by_result(m: dict[str, float]) -> dict[str, float]:
    res: dict[str, float] = {}
    for name, v in m.items():
        if name.startswith(METRIC + "probes_total{"):
            result = name.split('result="')[1].split('"')[0]
            res[result] = res.get(result, 0.0) + v
    return res


def lateness_quantiles(before: dict[str, float], after: dict[str, float],
                       qs: tuple[float, ...]) -> list[float]:
    """Quantiles of the lateness histogram's growth, linear within a bucket."""
    key = METRIC + 'schedule_lateness_seconds_bucket{le="'
    bounds = sorted((float(n[len(key):-2]), after[n] - before.get(n, 0.0))
                    for n in after if n.startswith(key))
    total = bounds[-1][1] if bounds else 0
    answers = []
    for q in qs:
        want, prev_le, prev_c = q * total, 0.0, 0.0
        answer = float("nan")
        for le, c in bounds:
            if c >= want and total:
                if math.isinf(le):
                    answer = prev_le
                else:
                    frac = (want - prev_c) / (c - prev_c) if c > prev_c else 1.0
                    answer = prev_le + frac * (le - prev_le)
                break
            prev_le, prev_c = le, c
        answers.append(answer)
    return answers


@dataclass
class Figures:
    probes: float = 0.0
    cpu: float = 0.0
    wall: float = 0.0
    results: dict[str, float] = field(default_factory=dict)
    p50: float = float("nan")
    p99: float = float("nan")
    rss: float = float("nan")
    missed: float = 0.0
    sys_cpu: float = 0.0               # the kernel's part of cpu
    wait: float = float("nan")         # run-queue wait of the checker's event loop
    others_cpu: float = float("nan")   # CPU-seconds used by every other process
    in_flight_max: float = 0.0
    limit: float = float("nan")
    listen_drops: int = 0              # connects the targets' listen queues dropped
    syn_retrans: int = 0
    sockets_at_start: str = ""


def run_checker(work: Path, checks: Path, fleet: Path, *, warmup: float, duration: float,
                profile: Path | None = None, path: str = "compiled") -> Figures:
    metrics_port = free_ports(1)[0]
    cmd = [str(ROOT / ".venv" / "bin" / "healthplane"), "checker", "--checks", str(checks),
           "--fleet", str(fleet), "--id", "bench-1", "--metrics", f"127.0.0.1:{metrics_port}",
           "--reload-period", "0", "--log-level", "info"]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "healthplane"]
    log_path = work / f"checker-{path}.log"
    log = open(log_path, "ab")
    start_at = log.tell()
    sockets_at_start = tcp_sockets()
    env = dict(os.environ, HEALTHPLANE_PURE_PYTHON="1" if path == "python" else "0")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=ROOT, env=env)
    spy: subprocess.Popen | None = None
    try:
        wait_for_port(metrics_port, proc, timeout=180)
        deadline = time.monotonic() + 180
        while sum(probes_by_result(scrape(metrics_port)).values()) == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the checker started no probes (see healthplane.checker.log)")
            time.sleep(0.2)
        with open(log_path, "rb") as started:
            started.seek(start_at)
            if f"probe engine: {path}".encode() not in started.read():
                raise RuntimeError(f"the checker did not log 'probe engine: {path}' "
                                   f"(see {log_path})")
        time.sleep(warmup)
        m0, c0, t0 = scrape(metrics_port), cpu_seconds(proc.pid), time.monotonic()
        k0 = sys_cpu_seconds(proc.pid)
        w0, b0, n0 = run_queue_wait(proc.pid), machine_busy_seconds(), tcp_counters()
        if profile is not None:
            spy = subprocess.Popen([shutil.which("py-spy") or str(ROOT / ".venv/bin/py-spy"),
                                    "record", "--pid", str(proc.pid), "--duration",
                                    str(int(duration)), "--rate", "200", "--format", "raw",
                                    "--output", str(profile), "--native"],
                                   stdout=log, stderr=log)
        # Sample probes in flight once a second (a scrape costs the checker
        # about a millisecond of CPU): a stall shows as a climb to the limit.
        in_flight_max = 0.0
        while time.monotonic() < t0 + duration:
            time.sleep(min(1.0, max(0.0, t0 + duration - time.monotonic())))
            in_flight_max = max(in_flight_max,
                                scrape(metrics_port).get(METRIC + "probes_in_flight", 0.0))
        m1, c1, t1 = scrape(metrics_port), cpu_seconds(proc.pid), time.monotonic()
        k1 = sys_cpu_seconds(proc.pid)
        w1, b1, n1 = run_queue_wait(proc.pid), machine_busy_seconds(), tcp_counters()
        f = Figures()
        f.wait = w1 - w0
        f.others_cpu = (b1 - b0) - (c1 - c0)
        f.in_flight_max = in_flight_max
        f.limit = m1.get(METRIC + "concurrency_limit", float("nan"))
        f.listen_drops = n1.get("ListenDrops", 0) - n0.get("ListenDrops", 0)
        f.syn_retrans = n1.get("TCPSynRetrans", 0) - n0.get("TCPSynRetrans", 0)
        f.sockets_at_start = sockets_at_start
        r0, r1 = probes_by_result(m0), probes_by_result(m1)
        f.results = {k: r1[k] - r0.get(k, 0.0) for k in r1 if r1[k] - r0.get(k, 0.0)}
        f.probes = sum(f.results.values())
        f.cpu, f.wall, f.sys_cpu = c1 - c0, t1 - t0, k1 - k0
        f.p50, f.p99 = lateness_quantiles(m0, m1, (0.5, 0.99))
        f.rss = rss_mb(proc.pid)
        f.missed = m1.get(METRIC + "missed_slots_total", 0) - m0.get(
            METRIC + "missed_slots_total", 0)
        if spy is not None:
            spy.wait(timeout=duration + 30)
        return f
    finally:
        stop(spy)
        stop(proc)
        log.close()


# -- HAProxy ------------------------------------------------------------------------

def haproxy_config(work: Path, name: str, servers: range, interval: float, timeout: float,
                   ports: list[int], maxconn: int) -> Path:
    per_backend = 1000
    # HAProxy refuses to run without a listener; the stats socket is one.
    lines = ["global", f"  maxconn {maxconn}", "  nbthread 1",
             f"  stats socket {work}/{name}.sock", "",
             "defaults", "  mode http", f"  timeout connect {timeout:g}s",
             "  timeout client 5s", "  timeout server 5s", f"  timeout check {timeout:g}s", ""]
    for b, first in enumerate(range(servers.start, servers.stop, per_backend)):
        lines += [f"backend b{b}", "  option httpchk GET /health"]
        for i in range(first, min(servers.stop, first + per_backend)):
            lines.append(f"  server s{i} 127.0.0.1:{ports[i % len(ports)]} "
                         f"check inter {int(interval * 1000)}")
    cfg = work / f"{name}.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def run_haproxy(work: Path, n: int, interval: float, timeout: float, ports: list[int],
                nginx: Nginx, *, warmup: float,
                duration: float) -> tuple[float, float, float, int, float]:
    """HAProxy checking n servers: (checks, cpu seconds, wall seconds, processes, sys seconds).

    HAProxy reserves one fd per server plus two per maxconn and exits when
    the fd limit is lower. Under a hard limit it cannot raise (20,000 here)
    the servers are split over several single-threaded HAProxy processes
    and their CPU is summed, which only adds per-process idle overhead.
    """
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    maxconn = 500
    per_process = max(1000, fd_limit - 2 * maxconn - 1000)
    procs: list[subprocess.Popen] = []
    log = open(work / "haproxy.log", "ab")
    try:
        for k, first in enumerate(range(0, n, per_process)):
            servers = range(first, min(n, first + per_process))
            cfg = haproxy_config(work, f"haproxy-{n}-{k}", servers, interval, timeout, ports,
                                 maxconn)
            procs.append(subprocess.Popen([binary("haproxy"), "-db", "-f", str(cfg)],
                                          stdout=log, stderr=log))
        # HAProxy spreads the first checks of each server over one interval.
        time.sleep(max(warmup, min(interval, 25.0)))
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {proc.returncode} (see haproxy.log)")
        q0, t0 = nginx.requests(), time.monotonic()
        c0 = sum(cpu_seconds(p.pid) for p in procs)
        k0 = sum(sys_cpu_seconds(p.pid) for p in procs)
        time.sleep(duration)
        q1, t1 = nginx.requests(), time.monotonic()
        c1 = sum(cpu_seconds(p.pid) for p in procs)
        k1 = sum(sys_cpu_seconds(p.pid) for p in procs)
        return q1 - q0 - 1, c1 - c0, t1 - t0, len(procs), k1 - k0
    finally:
        for proc in procs:
            stop(proc)
        log.close()


# -- main -----------------------------------------------------------------------------

def report(n: int, scenario: str, f: Figures, sink: Sink, path: str) -> None:
    tag = f"n={n} path={path} scenario={scenario}"
    per_cpu = f.probes / f.cpu if f.cpu else float("nan")
    results = ",".join(f"{k}:{int(v)}" for k, v in sorted(f.results.items()))
    out(f"{tag} probes_per_cpu_second={per_cpu:,.0f}")
    out(f"{tag} probe_rate_per_second={f.probes / f.wall:,.0f} (results {results}; "
        f"missed slots {int(f.missed)}; cpu {f.cpu:.2f}s, {f.sys_cpu:.2f}s of it sys, "
        f"over {f.wall:.1f}s)")
    out(f"{tag} lateness_p50_ms={f.p50 * 1000:.2f}")
    out(f"{tag} lateness_p99_ms={f.p99 * 1000:.2f}")
    out(f"{tag} rss_mb={f.rss:.1f}")
    out(f"{tag} probes_in_flight_max={f.in_flight_max:,.0f} (concurrency limit {f.limit:,.0f})")
    wait_pct = 100 * f.wait / f.wall if f.wall else float("nan")
    cpus = os.cpu_count() or 1
    out(f"{tag} cpu_wait_pct={wait_pct:.0f} (the checker's event loop was runnable but "
        f"waiting for a CPU; other processes used {f.others_cpu:.1f} of "
        f"{cpus * f.wall:.1f} CPU-seconds)")
    out(f"{tag} target_listen_drops={f.listen_drops} (SYN retransmits {f.syn_retrans}; "
        f"TCP sockets at start: {f.sockets_at_start})")
    if wait_pct > CONTENDED_WAIT_PCT:
        out(f"{tag} WARNING: contended machine: the checker waited for a CPU {wait_pct:.0f}% "
            "of the window, so its lateness and missed slots measure the other load as much "
            "as the checker; rerun when the machine is quiet")
    if f.listen_drops:
        out(f"{tag} WARNING: the targets dropped {f.listen_drops} connects (listen queue "
            "full): the scenario did not get the endpoints it names")
    with sink.lock:
        out(f"{tag} bytes_per_snapshot={sink.states_bytes} "
            f"(states; CheckerSnapshot message {sink.message_bytes} bytes, "
            f"expected ceil(2*{n}/8)={math.ceil(2 * n / 8)})")


def summarize_profile(path: Path, top: int = 12) -> None:
    if not path.exists():
        out("profile: py-spy wrote nothing (is ptrace allowed?)")
        return
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
    out(f"profile: {total} samples, py-spy raw stacks in {path}")
    for leaf, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out(f"profile: {100 * count / max(total, 1):5.1f}% {leaf}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the checker against nginx and HAProxy.")
    ap.add_argument("--checks", default="5000,50000",
                    help="comma-separated check counts (default 5000,50000)")
    ap.add_argument("--rate", type=float, default=2500.0,
                    help="probes per second; interval = checks / rate (default 2500)")
    ap.add_argument("--timeout", type=float, default=1.0, help="probe timeout (default 1 s)")
    ap.add_argument("--duration", type=float, default=20.0,
                    help="measured seconds per scenario (default 20)")
    ap.add_argument("--warmup", type=float, default=4.0,
                    help="seconds after the first probe before measuring (default 4)")
    ap.add_argument("--scenarios", default="quiet,refusing,timeout,haproxy")
    ap.add_argument("--shape", choices=("same", "distinct"), default="same",
                    help="same: every check is c<i> on 127.0.0.1 with one request; distinct: "
                    "each has a longer id and a Host header of its own (default same)")
    ap.add_argument("--paths", default="python,compiled",
                    help="probe paths to run, in order (default python,compiled)")
    ap.add_argument("--profile", nargs="?", const="quiet", choices=("quiet", "refusing", "timeout"),
                    help="also profile the checker with py-spy in a separate run of this "
                    "scenario (default quiet)")
    ap.add_argument("--workdir", help="keep configs and logs here (default: a temp dir)")
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.checks.split(",")]
    scenarios = [s for s in args.scenarios.split(",") if s]
    # HAProxy last, so every path's ratio can be printed beside it.
    scenarios = [s for s in scenarios if s != "haproxy"] + (
        ["haproxy"] if "haproxy" in scenarios else [])
    paths = [p for p in args.paths.split(",") if p]
    if not set(paths) <= {"compiled", "python"}:
        raise SystemExit("checker_bench: --paths takes compiled and/or python")
    quiet_rss: dict[tuple[str, int], float] = {}
    ensure_packages()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="checker-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    ports = free_ports(2 * TARGET_PORTS + 1)
    nginx_ports, hole_ports = ports[:TARGET_PORTS], ports[TARGET_PORTS:2 * TARGET_PORTS]
    closed, holders = refusing_ports(TARGET_PORTS)
    nginx = Nginx(work, nginx_ports, ports[-1])
    sink = Sink()
    hole: subprocess.Popen | None = None
    out(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; rate {args.rate:g}/s, "
        f"timeout {args.timeout:g}s, {args.duration:g}s per scenario; workdir {work}")
    try:
        nginx.start()
        sink_port = sink.start()
        if "timeout" in scenarios or args.profile == "timeout":
            hole = subprocess.Popen([sys.executable, str(ROOT / "bench" / "blackhole.py"),
                                     *map(str, hole_ports)], stdout=subprocess.PIPE)
            assert hole.stdout is not None
            hole.stdout.readline()
        targets = {"quiet": nginx_ports, "refusing": closed, "timeout": hole_ports}
        for n in counts:
            ours: dict[str, float] = {}
            runs = [(p, s) for s in scenarios if s != "haproxy" for p in paths]
            runs.sort(key=lambda r: paths.index(r[0]))
            if "haproxy" in scenarios:
                runs.append(("", "haproxy"))
            for path, scenario in runs:
                if scenario == "haproxy":
                    interval = n / args.rate
                    checks, cpu, wall, nproc, sys_cpu = run_haproxy(
                        work, n, interval, args.timeout, nginx_ports, nginx,
                        warmup=args.warmup, duration=args.duration)
                    per_cpu = checks / cpu if cpu else float("nan")
                    out(f"n={n} scenario=haproxy checks_per_cpu_second={per_cpu:,.0f}")
                    out(f"n={n} scenario=haproxy check_rate_per_second={checks / wall:,.0f} "
                        f"(cpu {cpu:.2f}s, {sys_cpu:.2f}s of it sys, over {wall:.1f}s, "
                        f"{nproc} process(es))")
                    for p, v in ours.items():
                        out(f"n={n} path={p} ratio_ours_to_haproxy={v / per_cpu:.2f}")
                    continue
                checks_path, fleet, _ = write_configs(work, n, args.rate, targets[scenario],
                                                      sink_port, args.timeout, args.shape)
                served0 = nginx.requests()
                f = run_checker(work, checks_path, fleet, warmup=args.warmup,
                                duration=args.duration, path=path)
                report(n, scenario, f, sink, path)
                if scenario == "quiet":
                    if f.cpu:
                        ours[path] = f.probes / f.cpu
                    quiet_rss[path, n] = f.rss
                    out(f"n={n} path={path} scenario=quiet nginx_requests_seen="
                        f"{nginx.requests() - served0 - 1} (whole run, warm-up included)")
        for path in paths:
            sizes = sorted(n for p, n in quiet_rss if p == path)
            if len(sizes) >= 2:
                lo, hi = sizes[0], sizes[-1]
                grow = (quiet_rss[path, hi] - quiet_rss[path, lo]) * 2**20 / (hi - lo)
                out(f"path={path} rss_bytes_per_check={grow:,.0f} (RSS growth from {lo:,} to "
                    f"{hi:,} checks, quiet, shape {args.shape})")
        if args.profile:
            n = counts[0]
            checks_path, fleet, _ = write_configs(work, n, args.rate, targets[args.profile],
                                                  sink_port, args.timeout)
            prof = work / f"checker-profile-{args.profile}.txt"
            run_checker(work, checks_path, fleet, warmup=args.warmup,
                        duration=min(args.duration, 15.0), profile=prof, path=paths[-1])
            summarize_profile(prof)
    finally:
        stop(hole)
        for sock in holders:
            sock.close()
        sink.stop()
        nginx.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
