"""``healthplane aggregator --checks checks.yaml --fleet fleet.yaml --listen HOST:PORT``.

Options:

    --snapshot-file PATH     also write each tick's snapshot to PATH (msgpack,
                             replaced atomically; see healthplane.aggregator.snapshot_file)
    --metrics HOST:PORT      (alias --http) the HTTP side port: /metrics, /healthz,
                             /readyz, the status page at / and /api/v1/checks
    --reload-period SECS     re-read the config files this often (default 60;
                             0: only on SIGHUP; --reload-interval is an alias)
    --log-level LEVEL        debug | info | warning | error (default info)
    --log-format FORMAT      logfmt | json (default logfmt)
    --tls-cert/--tls-key/--tls-ca FILE
                             serve only mutual TLS: clients need a certificate
                             from the CA; a checker may report only as a DNS
                             name of its certificate. SIGHUP and the reload
                             period re-read the three files.
    --insecure               serve plaintext on a non-loopback address

``--listen 127.0.0.1:0`` picks a free port; the bound address is logged as
``listening on HOST:PORT``. SIGHUP reloads the configuration; SIGTERM and
SIGINT stop gracefully. Exit 0 after a clean stop, 1 for a bad config or a
port that cannot be bound, 2 for usage errors, 3 when the gRPC server
stopped without being asked (a supervisor should restart the process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from healthplane.aggregator import tick_kernel
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Fleet, Registry

from healthplane.runtime import notify
from healthplane.runtime.flags import reload_period
from healthplane.runtime.listen import format_hostport, parse_listen
from healthplane.runtime.logs import add_log_flags, setup_from_args

if TYPE_CHECKING:
    from healthplane.aggregator.reload import FileSource

from healthplane.runtime.loop import run_event_loop
from healthplane.runtime.parent import watch_parent
from healthplane.runtime.tls import (
    TlsError,
    add_tls_arguments,
    tls_from_args,
    tls_reloader,
    tls_usage_error,
)

PROG = "healthplane aggregator"
log = logging.getLogger("healthplane.aggregator")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Run one aggregator: Ingest and "
                                "Health gRPC services over a fixed-schedule vote tick.")
    p.add_argument("--checks", required=True, metavar="PATH", help="checks.yaml")
    p.add_argument("--fleet", required=True, metavar="PATH", help="fleet.yaml")
    p.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="gRPC address to serve on (port 0 picks a free port)")
    p.add_argument("--snapshot-file", metavar="PATH",
                   help="write each tick's health snapshot to PATH (msgpack, atomic)")
    p.add_argument("--metrics", "--http", metavar="HOST:PORT",
                   help="serve the HTTP side port: /metrics, /healthz, /readyz, the status "
                   "page at / and /api/v1/checks")
    p.add_argument("--reload-period", "--reload-interval", type=reload_period, default=60.0,
                   metavar="SECONDS", dest="reload_period",
                   help="re-read the config files this often; 0 only on SIGHUP (default 60)")
    add_log_flags(p, default="info")
    add_tls_arguments(p, insecure=True)
    return p


def _check_address(flag: str, text: str) -> str | None:
    try:
        parse_listen(text)
    except ValueError as exc:
        return f"{PROG}: {flag}: {exc}"
    return None


def _load(checks: str, fleet: str) -> tuple[Registry, Fleet]:
    from healthplane.proto.config.loader import load_config
    registry, fl, _ = load_config(checks, fleet)
    assert fl is not None
    return registry, fl


async def _serve(args: argparse.Namespace, registry: Registry, fleet: Fleet,
                 source: FileSource, digest: bytes | None) -> int:
    from healthplane.aggregator.reload import adopt_into
    from healthplane.aggregator.server import Aggregator

    from healthplane.runtime.clock import SystemClock
    from healthplane.runtime.reload import Reloader

    clock = SystemClock()
    try:
        tls = tls_from_args(args)
    except TlsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    agg = Aggregator(registry, fleet, clock=clock, snapshot_file=args.snapshot_file, tls=tls)
    reloader = Reloader("config", source.load, lambda new: adopt_into(agg, new), clock=clock,
                        period=args.reload_period,
                        count=lambda result: agg.reloads.update([result]),
                        fingerprint=source.fingerprint, running=digest, logger=log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    certs = (tls_reloader(tls, clock=clock, period=args.reload_period, logger=log)
             if tls is not None else None)

    def hangup() -> None:
        reloader.trigger()
        if certs is not None:
            certs.trigger()

    # Handlers first: whoever sees the server up may send SIGHUP at once.
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hangup)
    watch_parent(loop)
    try:
        port = await agg.start(args.listen, metrics_listen=args.metrics,
                               insecure=args.insecure)
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        await agg.stop(0)
        return 1
    reload_task = asyncio.create_task(reloader.run(), name="config-reload")
    tasks = [reload_task]
    if certs is not None:
        tasks.append(asyncio.create_task(certs.run(), name="tls-reload"))
    address = format_hostport(parse_listen(args.listen)[0], port)
    log.info("listening on %s", address,
             extra={"address": address, "checks": registry.check_count,
                    "checkers": len(fleet.checker_ids), "registry": registry.version,
                    "transport": "mutual TLS" if tls else "plaintext"})
    tick_kernel.log_path(log)
    if tls is None and args.insecure:
        log.warning("serving plaintext gRPC with --insecure: anyone who can reach it can "
                    "report votes as any checker and read every check and checker",
                    extra={"address": address})
    if agg.metrics.port is not None:
        maddress = format_hostport(parse_listen(args.metrics)[0], agg.metrics.port)
        log.info("metrics on http://%s/metrics", maddress, extra={"address": maddress})
    stopper = asyncio.create_task(stop.wait())
    dier = asyncio.create_task(agg.died.wait())
    notify.ready(f"listening on {address}")
    try:
        await asyncio.wait((stopper, dier), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        dier.cancel()
        died = agg.died.is_set()
        notify.stopping()
        log.info("stopping")
        reloader.stop()
        if certs is not None:
            certs.stop()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A dead server has nothing to drain: exit at once.
        await agg.stop(grace=0 if died else 2.0)
    return 3 if died else 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_from_args(args)
    for flag, value in (("--listen", args.listen), ("--metrics", args.metrics)):
        if value is not None and (err := _check_address(flag, value)):
            print(err, file=sys.stderr)
            return 2
    if args.snapshot_file is not None:
        folder = os.path.dirname(os.path.abspath(args.snapshot_file))
        if not os.path.isdir(folder):
            print(f"{PROG}: --snapshot-file: directory {folder} does not exist", file=sys.stderr)
            return 2
    if args.reload_period < 0:
        print(f"{PROG}: --reload-period must be >= 0", file=sys.stderr)
        return 2
    from healthplane.aggregator.reload import FileSource

    from healthplane.runtime.files import UnreadableFile

    source = FileSource(args.checks, args.fleet)
    try:
        digest: bytes | None = source.fingerprint()   # before loading: a change meanwhile is seen
    except UnreadableFile:
        digest = None                  # the loader names the unreadable file
    if err := tls_usage_error(args):
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    try:
        registry, fleet = _load(args.checks, args.fleet)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"{PROG}: {line}", file=sys.stderr)
        return 1
    return run_event_loop(_serve(args, registry, fleet, source, digest))
