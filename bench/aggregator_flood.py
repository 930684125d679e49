"""Flood a real aggregator and compare its tick time and RSS with a quiet period.

    .venv/bin/python bench/aggregator_flood.py [--checks 100000] [--checkers 16] [--seconds 10]

(also run by bench/aggregator_bench.py). Starts `healthplane aggregator`
on loopback, pinned to one core, with a generated registry and fleet. Sender
processes, pinned to the other core, stream valid CheckerSnapshot messages
over gRPC for every checker of the fleet: first at the normal report rate
(one per checker per report_interval), then as fast as they can. Every phase
is bounded in time. The figures come from the server's own
tick_duration_seconds histogram and /proc/PID/status, one line each.

Constant work means the flooded tick costs what the quiet one does: a slot
is overwritten, never queued, so the tick's input has the same size however
many snapshots arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGIONS = 4
TICK = 0.25            # seconds; more ticks per phase than the default 1.0
REPORT_INTERVAL = 1.0
METHOD = "/healthplane.v1.Ingest/Report"


def write_config(folder: Path, checks: int, checkers: int) -> tuple[Path, Path, list]:
    checks_path, fleet_path = folder / "checks.yaml", folder / "fleet.yaml"
    with checks_path.open("w") as f:
        f.write("checks:\n")
        for i in range(checks):
            f.write(f"  - {{id: c{i}, type: tcp, host: 192.0.2.{i % 250 + 1}, port: 80}}\n")
    members = [(f"k{r}-{j}", f"r{r}") for r in range(REGIONS)
               for j in range(-(-checkers // REGIONS))][:checkers]
    with fleet_path.open("w") as f:
        f.write("regions:\n")
        for r in range(REGIONS):
            ids = [c for c, reg in members if reg == f"r{r}"]
            f.write(f"  r{r}: [{', '.join(ids)}]\n")
        f.write(f'aggregators: ["127.0.0.1:7000"]\nreport_interval: {REPORT_INTERVAL}\n'
                f"tick: {TICK}\nstale_after: 3.0\n")
    return checks_path, fleet_path, members


# -- the sender process ------------------------------------------------------

def sender(addr: str, version: str, check_count: int, members: list, mode: str,
           seconds: float, cpu: int) -> None:
    """Stream snapshots for members until the deadline; print one JSON line."""
    import grpc
    import numpy as np
    from healthplane.proto import codec
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

    os.sched_setaffinity(0, {cpu})
    rng = np.random.default_rng(abs(hash(members[0][0])) % 2**32)
    messages = []
    for cid, region in members:
        for seq, bad in enumerate((0.02, 0.6)):   # alternate: mostly healthy, mostly failing
            st = np.where(rng.random(check_count) < bad, codec.UNHEALTHY, codec.HEALTHY)
            messages.append(pb.CheckerSnapshot(
                checker_id=cid, region=region, registry_version=version, sequence=seq + 1,
                sent_unix_ms=int(time.time() * 1000), check_count=check_count,
                states=codec.pack(st.astype(np.uint8))).SerializeToString())
    sent = 0

    def stream():
        nonlocal sent
        deadline = time.monotonic() + seconds
        if mode == "flood":
            while time.monotonic() < deadline:
                for m in messages:
                    sent += 1
                    yield m
            return
        nxt = time.monotonic()
        k = 0
        while nxt < deadline:
            for i in range(len(members)):
                sent += 1
                yield messages[2 * i + (k & 1)]
            k += 1
            nxt += REPORT_INTERVAL
            time.sleep(max(0.0, nxt - time.monotonic()))

    with grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", -1)]) as ch:
        call = ch.stream_unary(METHOD, request_serializer=None,
                               response_deserializer=pb.ReportSummary.FromString)
        summary = call(stream(), timeout=seconds + 30)
    print(json.dumps({"sent": sent, "accepted": summary.accepted, "dropped": summary.dropped}))


# -- the driver --------------------------------------------------------------

class Server:
    """A `healthplane aggregator` process and its log lines."""

    def __init__(self, checks: Path, fleet: Path, cpu: int) -> None:
        exe = shutil.which("healthplane", path=str(Path(sys.executable).parent)) or "healthplane"
        self.proc = subprocess.Popen(
            [exe, "aggregator", "--checks", str(checks), "--fleet", str(fleet),
             "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--reload-interval", "0",
             "--log-level", "info"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        self.lines: list[str] = []
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cv:
                self.lines.append(line.rstrip())
                self._cv.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self.lines:
                    if m := re.search(pattern, line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"aggregator never logged {pattern!r}:\n"
                                       + "\n".join(self.lines[-20:]))
                self._cv.wait(min(left, 0.5))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> tuple[float, float]:
        """(main thread, all other threads) CPU seconds so far.

        The main thread runs the event loop: ingest handlers and the tick.
        The others are gRPC's transport threads, which read the bytes off
        the sockets and compete with the tick for the core.
        """
        hz = os.sysconf("SC_CLK_TCK")
        main = other = 0.0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used = (int(fields[11]) + int(fields[12])) / hz
            if task.name == str(self.proc.pid):
                main += used
            else:
                other += used
        return main, other

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("healthplane_aggregator_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def phase(server: Server, port: int, addr: str, version: str, n: int, members: list,
          mode: str, seconds: float, senders: int, cpu: int) -> dict[str, float]:
    before = scrape(port)
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    parts = [members[i::senders] for i in range(senders)]
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--sender", json.dumps(
            [addr, version, n, part, mode, seconds, cpu])],
        stdout=subprocess.PIPE, text=True) for part in parts if part]
    rss = [server.rss_mb()]
    deadline = time.monotonic() + seconds + 60
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.5)
        rss.append(server.rss_mb())
    results = []
    for p in procs:
        if p.poll() is None:
            p.kill()
        out, _ = p.communicate()
        results.append(json.loads(out.strip().splitlines()[-1]) if out.strip() else {})
    after = scrape(port)
    cpu1, elapsed = server.cpu_seconds(), time.monotonic() - t0

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    ticks = delta("healthplane_aggregator_tick_duration_seconds_count")
    total = delta("healthplane_aggregator_tick_duration_seconds_sum")
    over = {}
    for key in after:
        if key.startswith("healthplane_aggregator_tick_duration_seconds_bucket"):
            le = re.search(r'le="([^"]+)"', key)
            if le:
                over[le.group(1)] = delta(key)
    return {"ticks": ticks, "mean_ms": 1000 * total / ticks if ticks else float("nan"),
            "buckets": over,
            "accepted": delta("healthplane_aggregator_snapshots_accepted_total"),
            "sent": sum(r.get("sent", 0) for r in results),
            "rss_start": rss[0], "rss_end": rss[-1], "rss_max": max(rss),
            "missed": delta("healthplane_aggregator_ticks_missed_total"),
            "cpu_main": (cpu1[0] - cpu0[0]) / elapsed, "cpu_other": (cpu1[1] - cpu0[1]) / elapsed}


def report(label: str, r: dict[str, float], seconds: float) -> None:
    le = [k for k, v in r["buckets"].items() if v >= r["ticks"] and k != "+Inf"]
    bound = min(le, key=float) if le else "+Inf"
    print(f"{label:<7} ticks={int(r['ticks']):<4} mean tick {r['mean_ms']:6.2f} ms "
          f"(all <= {float(bound) * 1e3:g} ms)  accepted {r['accepted'] / seconds:8.0f} "
          f"snapshots/s (sent {r['sent'] / seconds:8.0f}/s)  missed ticks {int(r['missed'])}  "
          f"RSS {r['rss_start']:.0f} -> {r['rss_end']:.0f} MB (max {r['rss_max']:.0f})  "
          f"core use: event loop {100 * r['cpu_main']:.0f} %, gRPC threads "
          f"{100 * r['cpu_other']:.0f} %", flush=True)


def run(*, seconds: float = 10.0, checks: int = 100_000, checkers: int = 16,
        senders: int = 2) -> int:
    # The caller may have pinned itself to one core; children choose their own.
    server_cpu, sender_cpu = 0, (os.cpu_count() or 1) - 1
    with tempfile.TemporaryDirectory(prefix="hp-flood-") as tmp:
        checks_path, fleet_path, members = write_config(Path(tmp), checks, checkers)
        server = Server(checks_path, fleet_path, server_cpu)
        try:
            port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 300).group(1))
            mport = int(server.wait_for(r"metrics on http://[^:]+:(\d+)", 30).group(1))
            addr = f"127.0.0.1:{port}"
            version = server.wait_for(r"registry version (\S+)", 5).group(1).rstrip(")")
            print(f"flood: aggregator pid {server.proc.pid} on cpu {server_cpu}, {senders} sender "
                  f"processes on cpu {sender_cpu}; checks={checks} checkers={checkers} "
                  f"tick={TICK}s; {seconds:g} s per phase", flush=True)
            # Warm up: every slot filled and fresh before measuring.
            phase(server, mport, addr, version, checks, members, "quiet", 2.0, senders,
                  sender_cpu)
            quiet = phase(server, mport, addr, version, checks, members, "quiet", seconds,
                          senders, sender_cpu)
            report("quiet", quiet, seconds)
            floods = []
            for k in (1, 2):
                # Twice: the first flood grows gRPC's buffers once; flat RSS
                # means the second one adds nothing.
                floods.append(phase(server, mport, addr, version, checks, members, "flood",
                                    seconds, senders, sender_cpu))
                report(f"flood {k}", floods[-1], seconds)
            ratios = ", ".join(f"{f['mean_ms'] / quiet['mean_ms']:.2f}" for f in floods)
            print(f"flooded / quiet mean tick: {ratios} (flood 1, flood 2); RSS during "
                  f"flood 2: {floods[1]['rss_start']:.0f} -> {floods[1]['rss_end']:.0f} MB "
                  f"(max {floods[1]['rss_max']:.0f})", flush=True)
        except (RuntimeError, OSError) as exc:
            print(f"flood: {exc}", file=sys.stderr)
            return 1
        finally:
            server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checks", type=int, default=100_000)
    p.add_argument("--checkers", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    p.add_argument("--senders", type=int, default=2, help="sender processes")
    p.add_argument("--sender", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sender:
        addr, version, n, members, mode, seconds, cpu = json.loads(args.sender)
        sender(addr, version, n, [tuple(m) for m in members], mode, seconds, cpu)
        return 0
    return run(seconds=args.seconds, checks=args.checks, checkers=args.checkers,
               senders=args.senders)


if __name__ == "__main__":
    raise SystemExit(main())
