"""One rogue client against a real mutual-TLS aggregator: honest votes still land.

    .venv/bin/python bench/aggregator_abuse.py [--seconds 10] [--idle 1200]
                                               [--streams 500] [--watchers 1000]

Starts `healthplane aggregator` with mutual TLS (certificates from
healthplane.certs) and three honest checkers' streams (their own process,
one snapshot each per report interval). After a quiet phase, one rogue
process, holding a valid certificate, opens at once:

- ``--idle`` TCP connections that never say a word (reopened as the
  aggregator closes them at its handshake timeout),
- ``--streams`` Ingest.Report streams over 50 connections,
- ``--watchers`` Health.Watch streams over 100 connections, never read.

Throughout, the driver asks Health.Query every 0.25 s for the age of every
honest checker's latest snapshot (it must stay within one report interval
plus one tick), and reads the aggregator's tick-time histogram, its refusal
counters and its RSS from /proc. Printed: the bounds, then one line per
phase with the figures. Everything is on loopback and bounded in time; the
processes started here are stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import aggregator_flood as flood  # noqa: E402  (Server, scrape)

REPORT_INTERVAL = 1.0
TICK = 0.5
HONEST = ("h1", "h2", "h3")
CHECKS = 1000
# What a rogue may add to the aggregator's RSS: its connections (at most
# max_connections, 2,048, with a few kB of buffers each) and its streams (at
# most 4 Report and 4 Watch per certificate) with their flow-control windows.
RSS_ALLOWANCE_MB = 256


def write_config(folder: Path) -> tuple[Path, Path]:
    checks, fleet = folder / "checks.yaml", folder / "fleet.yaml"
    with checks.open("w") as f:
        f.write("checks:\n")
        for i in range(CHECKS):
            f.write(f"  - {{id: c{i}, type: tcp, host: 192.0.2.{i % 250 + 1}, port: 80}}\n")
    fleet.write_text(
        "regions:\n  r1: [h1, rogue]\n  r2: [h2]\n  r3: [h3]\n"
        f'aggregators: ["127.0.0.1:7000"]\nreport_interval: {REPORT_INTERVAL}\n'
        f"tick: {TICK}\nstale_after: 3.0\n")
    return checks, fleet


def _creds(d: Path, name: str):  # type: ignore[no-untyped-def]
    import grpc
    return grpc.ssl_channel_credentials((d / "ca.pem").read_bytes(),
                                        (d / f"{name}-key.pem").read_bytes(),
                                        (d / f"{name}.pem").read_bytes())


def _snapshot(cid: str, region: str, version: str, seq: int, incarnation: int):  # type: ignore[no-untyped-def]
    from healthplane.proto import codec
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
    return pb.CheckerSnapshot(checker_id=cid, region=region, registry_version=version,
                              sequence=seq, incarnation=incarnation,
                              sent_unix_ms=int(time.time() * 1000), check_count=CHECKS,
                              states=codec.encode([codec.HEALTHY] * CHECKS))


# -- the honest checkers -------------------------------------------------------

async def honest(addr: str, version: str, certs: Path, seconds: float) -> None:
    import grpc
    from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc
    regions = {"h1": "r1", "h2": "r2", "h3": "r3"}
    inc = time.time_ns() // 1000

    async def one(cid: str) -> None:
        deadline = time.monotonic() + seconds
        seq = 0
        while time.monotonic() < deadline:
            try:
                async with grpc.aio.secure_channel(addr, _creds(certs, f"checker-{cid}")) as ch:
                    call = pb_grpc.IngestStub(ch).Report()
                    nxt = time.monotonic()
                    while nxt < deadline:
                        seq += 1
                        await call.write(_snapshot(cid, regions[cid], version, seq, inc))
                        nxt += REPORT_INTERVAL
                        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
                    await call.done_writing()
                    await call
            except grpc.aio.AioRpcError as exc:
                print(json.dumps({"honest_error": f"{cid}: {exc.code().name}"}), flush=True)
                await asyncio.sleep(0.2)

    await asyncio.gather(*(one(c) for c in HONEST))


# -- the rogue -------------------------------------------------------------------

async def rogue(addr: str, version: str, certs: Path, seconds: float, idle: int,
                streams: int, watchers: int) -> None:
    import grpc
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
    from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

    from healthplane.runtime.fdlimit import ensure_open_files
    ensure_open_files(idle + 2 * (streams + watchers) + 512)
    host, port = addr.rsplit(":", 1)
    stop = threading.Event()
    reopened = [0]

    def hold_idle() -> None:
        socks: list[socket.socket | None] = [None] * idle
        while not stop.is_set():
            for i, s in enumerate(socks):
                if s is not None:
                    try:
                        if s.recv(1, socket.MSG_DONTWAIT) == b"":
                            s.close()
                            socks[i] = None
                    except BlockingIOError:
                        continue
                    except OSError:
                        s.close()
                        socks[i] = None
                if socks[i] is None:
                    try:
                        socks[i] = socket.create_connection((host, int(port)), timeout=1)
                        reopened[0] += 1
                    except OSError:
                        pass
            stop.wait(0.5)
        for s in socks:
            if s is not None:
                s.close()

    t = threading.Thread(target=hold_idle, daemon=True)
    t.start()
    creds = _creds(certs, "checker-rogue")
    opts = [("grpc.use_local_subchannel_pool", 1)]
    chans = [grpc.aio.secure_channel(addr, creds, options=opts) for _ in range(150)]
    reports, watches = [], []
    for n in range(streams):
        call = pb_grpc.IngestStub(chans[n % 50]).Report()
        reports.append(call)
    inc = time.time_ns() // 1000
    for n, call in enumerate(reports):
        try:
            await asyncio.wait_for(call.write(_snapshot("rogue", "r1", version, n + 1, inc)), 2)
        except Exception:  # noqa: BLE001 - refused streams fail their writes
            pass
    for n in range(watchers):
        watches.append(pb_grpc.HealthStub(chans[50 + n % 100]).Watch(pb.WatchRequest()))
    await asyncio.sleep(seconds)
    codes: dict[str, int] = {}
    for call in (*reports, *watches):
        kind = "report" if call in reports else "watch"
        code = (await call.code()).name if call.done() else "OPEN"
        codes[f"{kind}:{code}"] = codes.get(f"{kind}:{code}", 0) + 1
        call.cancel()
    stop.set()
    t.join(5)
    for ch in chans:
        await ch.close(grace=None)
    print(json.dumps({"rogue": codes, "idle_connects": reopened[0]}), flush=True)


# -- the driver ------------------------------------------------------------------

def ages(addr: str, certs: Path) -> list[int]:
    import grpc
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
    from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc
    with grpc.secure_channel(addr, _creds(certs, "query")) as ch:
        resp = pb_grpc.HealthStub(ch).Query(pb.QueryRequest(check_ids=["c0"]), timeout=2)
    return [v.snapshot_age_ms for v in resp.checks[0].checkers if v.checker_id in HONEST]


def watch_phase(server: flood.Server, mport: int, addr: str, certs: Path,
                seconds: float) -> dict[str, float]:
    before = flood.scrape(mport)
    worst, rss, samples, failures = 0, [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got = ages(addr, certs)
            worst = max([worst, *got]) if got else worst
            samples += 1
            if any(a < 0 for a in got):
                failures += 1
        except Exception:  # noqa: BLE001 - a failed query counts against the fleet
            failures += 1
        rss.append(server.rss_mb())
        time.sleep(0.25)
    after = flood.scrape(mport)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    ticks = delta("healthplane_aggregator_tick_duration_seconds_count")
    total = delta("healthplane_aggregator_tick_duration_seconds_sum")
    buckets = {k: delta(k) for k in after if "tick_duration_seconds_bucket" in k}
    refused = {k.split("{", 1)[1].rstrip("}"): v for k, v in after.items()
               if k.startswith("healthplane_aggregator_rpcs_refused_total")}
    return {"worst_age_ms": worst, "samples": samples, "failures": failures,
            "ticks": ticks, "mean_ms": 1000 * total / ticks if ticks else float("nan"),
            "buckets": buckets, "rss_max": max(rss), "rss_end": rss[-1], "refused": refused,
            "missed": delta("healthplane_aggregator_ticks_missed_total")}


def show(label: str, r: dict) -> None:  # type: ignore[type-arg]
    le = [k for k, v in r["buckets"].items() if v >= r["ticks"] and "+Inf" not in k]
    bound = min((float(k.split('le="')[1].split('"')[0]) for k in le), default=float("inf"))
    print(f"{label:<7} honest snapshot age max {r['worst_age_ms']} ms over {r['samples']} "
          f"queries ({r['failures']} failed)  ticks={int(r['ticks'])} mean tick "
          f"{r['mean_ms']:.2f} ms (all <= {bound * 1e3:g} ms, missed {int(r['missed'])})  "
          f"RSS max {r['rss_max']:.0f} MB", flush=True)


def run(seconds: float, idle: int, streams: int, watchers: int) -> int:
    from healthplane.certs import issue, new_ca, write_pair
    with tempfile.TemporaryDirectory(prefix="hp-abuse-") as tmp:
        folder = Path(tmp)
        checks, fleet = write_config(folder)
        certs = folder / "certs"
        certs.mkdir()
        ca = new_ca()
        write_pair(certs, "ca", ca)
        write_pair(certs, "aggregator", issue(ca, "aggregator", ["127.0.0.1"], server=True))
        for cid in (*HONEST, "rogue"):
            write_pair(certs, f"checker-{cid}", issue(ca, cid, [cid]))
        write_pair(certs, "query", issue(ca, "query", ["query"]))
        server = flood.Server(checks, fleet, 0, certs)
        procs: list[subprocess.Popen[str]] = []
        try:
            port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 60).group(1))
            mport = int(server.wait_for(r"metrics on http://[^:]+:(\d+)", 30).group(1))
            version = server.wait_for(r"registry=([0-9a-f]+)", 5).group(1)
            addr = f"127.0.0.1:{port}"
            bound = REPORT_INTERVAL + TICK
            print(f"abuse: aggregator pid {server.proc.pid}, {CHECKS} checks, honest "
                  f"checkers {', '.join(HONEST)}; bound: every honest snapshot age <= "
                  f"{bound * 1000:.0f} ms (report interval + tick) in every query, mean tick <= 2x "
                  f"quiet + 1 ms, RSS <= quiet + {RSS_ALLOWANCE_MB} MB; rogue: "
                  f"{idle} idle TCP connections, {streams} Report streams, {watchers} unread "
                  f"Watch streams, one certificate", flush=True)
            total = 3 * seconds + 10
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--role", "honest", json.dumps(
                    [addr, version, str(certs), total])], stdout=subprocess.PIPE, text=True))
            time.sleep(2 * REPORT_INTERVAL)   # every honest slot filled
            quiet = watch_phase(server, mport, addr, certs, seconds)
            show("quiet", quiet)
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--role", "rogue", json.dumps(
                    [addr, version, str(certs), seconds + 2, idle, streams, watchers])],
                stdout=subprocess.PIPE, text=True))
            time.sleep(2)                     # the rogue's streams are open
            attack = watch_phase(server, mport, addr, certs, seconds)
            show("attack", attack)
            out, _ = procs[1].communicate(timeout=seconds + 60)
            print(f"rogue: {out.strip().splitlines()[-1] if out.strip() else 'no report'}")
            print(f"refused by the aggregator (rpcs_refused_total): {attack['refused']}")
            ok = attack["worst_age_ms"] <= bound * 1000 and attack["failures"] == 0
            tick_ok = attack["mean_ms"] <= 2 * quiet["mean_ms"] + 1.0
            rss_ok = attack["rss_max"] <= quiet["rss_max"] + RSS_ALLOWANCE_MB
            print(f"honest votes {'stayed' if ok else 'did NOT stay'} within the bound; "
                  f"attack/quiet mean tick {attack['mean_ms'] / quiet['mean_ms']:.2f} (bound 2x "
                  f"+ 1 ms: {'held' if tick_ok else 'NOT held'}); RSS max "
                  f"{quiet['rss_max']:.0f} -> {attack['rss_max']:.0f} MB (bound +"
                  f"{RSS_ALLOWANCE_MB} MB: {'held' if rss_ok else 'NOT held'})", flush=True)
            ok = ok and tick_ok and rss_ok
            return 0 if ok else 1
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"abuse: {exc}", file=sys.stderr)
            return 1
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    p.add_argument("--idle", type=int, default=1200)
    p.add_argument("--streams", type=int, default=500)
    p.add_argument("--watchers", type=int, default=1000)
    p.add_argument("--role", choices=("honest", "rogue"), help=argparse.SUPPRESS)
    p.add_argument("params", nargs="?", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "honest":
        addr, version, certs, seconds = json.loads(args.params)
        asyncio.run(honest(addr, version, Path(certs), seconds))
        return 0
    if args.role == "rogue":
        addr, version, certs, seconds, idle, streams, watchers = json.loads(args.params)
        asyncio.run(rogue(addr, version, Path(certs), seconds, idle, streams, watchers))
        return 0
    return run(args.seconds, args.idle, args.streams, args.watchers)


if __name__ == "__main__":
    raise SystemExit(main())
