"""Flood a real aggregator and compare its tick time and RSS with a quiet period.

    .venv/bin/python bench/aggregator_flood.py [--checks 100000] [--checkers 16] [--seconds 10]
                                               [--tls off|on|both]

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

``--tls both`` runs every phase against a plaintext aggregator and then
against one serving mutual TLS (certificates from healthplane.certs; each
sender's certificate names the checkers it reports for), so the two sets of
figures come from the same run on the same machine. Every snapshot carries a
new sequence (appended to the pre-serialized message: protobuf keeps the
last value of a field), as a live checker's do.
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

def _tls_dir_for(folder: Path, members: list, senders: int) -> Path:
    """A CA, the aggregator's certificate and one per sender (naming its checkers)."""
    from healthplane.certs import issue, new_ca, write_pair
    out = folder / "certs"
    out.mkdir(exist_ok=True)
    ca = new_ca()
    write_pair(out, "ca", ca)
    write_pair(out, "aggregator", issue(ca, "aggregator", ["127.0.0.1", "localhost"],
                                        server=True))
    for i in range(senders):
        write_pair(out, f"sender-{i}", issue(ca, f"sender-{i}",
                                             [c for c, _ in members[i::senders]]))
    return out


def sender(addr: str, version: str, check_count: int, members: list, mode: str,
           seconds: float, cpu: int, tls_dir: str | None = None, index: int = 0) -> None:
    """Stream snapshots for members until the deadline; print one JSON line."""
    import grpc
    import numpy as np
    from healthplane.proto import codec
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

    os.sched_setaffinity(0, {cpu})
    rng = np.random.default_rng(abs(hash(members[0][0])) % 2**32)
    messages = []
    incarnation = time.time_ns() // 1000   # this sender's "process start"
    for cid, region in members:
        for bad in (0.02, 0.6):   # alternate: mostly healthy, mostly failing
            st = np.where(rng.random(check_count) < bad, codec.UNHEALTHY, codec.HEALTHY)
            messages.append(pb.CheckerSnapshot(
                checker_id=cid, region=region, registry_version=version,
                incarnation=incarnation,
                sent_unix_ms=int(time.time() * 1000), check_count=check_count,
                states=codec.pack(st.astype(np.uint8))).SerializeToString())
    sent = 0

    def numbered(m: bytes) -> bytes:
        # Field 4 (sequence) appended: the parser keeps the last value.
        n, tail = sent, bytearray(b"\x20")
        while True:
            byte, n = n & 0x7F, n >> 7
            tail.append(byte | (0x80 if n else 0))
            if not n:
                return m + bytes(tail)

    def stream():
        nonlocal sent
        deadline = time.monotonic() + seconds
        if mode == "flood":
            while time.monotonic() < deadline:
                for m in messages:
                    sent += 1
                    yield numbered(m)
            return
        nxt = time.monotonic()
        k = 0
        while nxt < deadline:
            for i in range(len(members)):
                sent += 1
                yield numbered(messages[2 * i + (k & 1)])
            k += 1
            nxt += REPORT_INTERVAL
            time.sleep(max(0.0, nxt - time.monotonic()))

    options = [("grpc.max_send_message_length", -1)]
    if tls_dir is None:
        channel = grpc.insecure_channel(addr, options=options)
    else:
        d = Path(tls_dir)
        creds = grpc.ssl_channel_credentials((d / "ca.pem").read_bytes(),
                                             (d / f"sender-{index}-key.pem").read_bytes(),
                                             (d / f"sender-{index}.pem").read_bytes())
        channel = grpc.secure_channel(addr, creds, options=options)
    with channel as ch:
        call = ch.stream_unary(METHOD, request_serializer=None,
                               response_deserializer=pb.ReportSummary.FromString)
        summary = call(stream(), timeout=seconds + 30)
    print(json.dumps({"sent": sent, "accepted": summary.accepted, "dropped": summary.dropped}))


# -- the driver --------------------------------------------------------------

class Server:
    """A `healthplane aggregator` process and its log lines."""

    def __init__(self, checks: Path, fleet: Path, cpu: int, tls_dir: Path | None = None) -> None:
        exe = shutil.which("healthplane", path=str(Path(sys.executable).parent)) or "healthplane"
        tls = [] if tls_dir is None else [
            "--tls-cert", str(tls_dir / "aggregator.pem"),
            "--tls-key", str(tls_dir / "aggregator-key.pem"), "--tls-ca", str(tls_dir / "ca.pem")]
        self.proc = subprocess.Popen(
            [exe, "aggregator", "--checks", str(checks), "--fleet", str(fleet),
             "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--reload-interval", "0",
             "--log-level", "info", *tls],
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
          mode: str, seconds: float, senders: int, cpu: int,
          tls_dir: Path | None = None) -> dict[str, float]:
    before = scrape(port)
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    parts = [members[i::senders] for i in range(senders)]
    tls = None if tls_dir is None else str(tls_dir)
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--sender", json.dumps(
            [addr, version, n, part, mode, seconds, cpu, tls, i])],
        stdout=subprocess.PIPE, text=True) for i, part in enumerate(parts) if part]
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
        senders: int = 2, tls: str = "off") -> int:
    modes = {"off": [False], "on": [True], "both": [False, True]}[tls]
    results = {}
    for secure in modes:
        if secure:
            print("-- mutual TLS --", flush=True)
        elif len(modes) > 1:
            print("-- plaintext --", flush=True)
        got = _run_one(seconds=seconds, checks=checks, checkers=checkers, senders=senders,
                       secure=secure)
        if got is None:
            return 1
        results[secure] = got
    if len(results) == 2:
        (pq, pf), (tq, tf) = results[False], results[True]
        print(f"TLS / plaintext: quiet mean tick {tq['mean_ms'] / pq['mean_ms']:.2f}, "
              f"flooded mean tick {tf['mean_ms'] / pf['mean_ms']:.2f}, flooded ingest "
              f"{tf['accepted'] / max(1.0, pf['accepted']):.2f} (accepted snapshots/s)",
              flush=True)
    return 0


def _run_one(*, seconds: float, checks: int, checkers: int, senders: int, secure: bool
             ) -> tuple[dict[str, float], dict[str, float]] | None:
    # The caller may have pinned itself to one core; children choose their own.
    server_cpu, sender_cpu = 0, (os.cpu_count() or 1) - 1
    with tempfile.TemporaryDirectory(prefix="hp-flood-") as tmp:
        checks_path, fleet_path, members = write_config(Path(tmp), checks, checkers)
        tls_dir = _tls_dir_for(Path(tmp), members, senders) if secure else None
        server = Server(checks_path, fleet_path, server_cpu, tls_dir)
        try:
            port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 300).group(1))
            mport = int(server.wait_for(r"metrics on http://[^:]+:(\d+)", 30).group(1))
            addr = f"127.0.0.1:{port}"
            version = server.wait_for(r"registry=([0-9a-f]+)", 5).group(1)
            print(f"flood: aggregator pid {server.proc.pid} on cpu {server_cpu}, {senders} sender "
                  f"processes on cpu {sender_cpu}; checks={checks} checkers={checkers} "
                  f"tick={TICK}s; {seconds:g} s per phase", flush=True)
            # Warm up: every slot filled and fresh before measuring.
            phase(server, mport, addr, version, checks, members, "quiet", 2.0, senders,
                  sender_cpu, tls_dir)
            quiet = phase(server, mport, addr, version, checks, members, "quiet", seconds,
                          senders, sender_cpu, tls_dir)
            report("quiet", quiet, seconds)
            floods = []
            for k in (1, 2):
                # Twice: the first flood grows gRPC's buffers once; flat RSS
                # means the second one adds nothing.
                floods.append(phase(server, mport, addr, version, checks, members, "flood",
                                    seconds, senders, sender_cpu, tls_dir))
                report(f"flood {k}", floods[-1], seconds)
            ratios = ", ".join(f"{f['mean_ms'] / quiet['mean_ms']:.2f}" for f in floods)
            print(f"flooded / quiet mean tick: {ratios} (flood 1, flood 2); RSS during "
                  f"flood 2: {floods[1]['rss_start']:.0f} -> {floods[1]['rss_end']:.0f} MB "
                  f"(max {floods[1]['rss_max']:.0f})", flush=True)
        except (RuntimeError, OSError) as exc:
            print(f"flood: {exc}", file=sys.stderr)
            return None
        finally:
            server.stop()
    return quiet, floods[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checks", type=int, default=100_000)
    p.add_argument("--checkers", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    p.add_argument("--senders", type=int, default=2, help="sender processes")
    p.add_argument("--tls", choices=("off", "on", "both"), default="off",
                   help="plaintext, mutual TLS, or both in the same run (default off)")
    p.add_argument("--sender", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sender:
        addr, version, n, members, mode, seconds, cpu, tls, index = json.loads(args.sender)
        sender(addr, version, n, [tuple(m) for m in members], mode, seconds, cpu, tls, index)
        return 0
    return run(seconds=args.seconds, checks=args.checks, checkers=args.checkers,
               senders=args.senders, tls=args.tls)


if __name__ == "__main__":
    raise SystemExit(main())
