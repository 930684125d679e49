"""``healthplane checker``: run one checker of a fleet.

    healthplane checker --checks checks.yaml --fleet fleet.yaml --id CHECKER_ID
                        [--metrics HOST:PORT] [--reload-period SECONDS]
                        [--canary-interval SECONDS] [--log-level LEVEL]
                        [--log-format logfmt|json] [-v]
                        [--tls-cert FILE --tls-key FILE --tls-ca FILE]

Exits 0 after SIGTERM or SIGINT, 1 on a bad file or an unknown checker id,
2 on bad arguments; errors are one line each, never a traceback. SIGHUP
re-reads both files now. An unreachable aggregator is not an error: the
checker keeps probing and keeps retrying the stream. With --tls-*, every
stream is mutual TLS: the checker shows its certificate (whose DNS
subjectAltName must be its --id) and verifies the aggregator's against the
CA and the address dialled; SIGHUP and the reload period re-read the files,
and the next stream opened uses them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from typing import NoReturn

from healthplane.runtime import notify
from healthplane.runtime.flags import reload_period
from healthplane.runtime.logs import add_log_flags, setup_from_args
from healthplane.runtime.loop import run_event_loop
from healthplane.runtime.parent import watch_parent
from healthplane.runtime.sideport import SidePort
from healthplane.runtime.tls import (
    TlsError,
    add_tls_arguments,
    certificate_dns_names,
    tls_from_args,
    tls_reloader,
    tls_usage_error,
)

PROG = "healthplane checker"
log = logging.getLogger("healthplane.checker")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        print(f"{PROG}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Probe this checker's share of the checks on a "
                "fixed schedule and stream full snapshots to every aggregator.")
    p.add_argument("--checks", required=True, metavar="PATH", help="checks.yaml")
    p.add_argument("--fleet", required=True, metavar="PATH", help="fleet.yaml")
    p.add_argument("--id", required=True, metavar="CHECKER_ID", dest="checker_id",
                   help="this checker's id, as listed under regions in fleet.yaml")
    p.add_argument("--metrics", "--http", metavar="HOST:PORT",
                   help="serve the HTTP side port: /metrics, /healthz, /readyz "
                   "(ready while streaming to at least one aggregator)")
    p.add_argument("--reload-period", "--reload-interval", type=reload_period, default=30.0,
                   metavar="SECONDS", dest="reload_period",
                   help="re-read both files this often (default 30; 0: only on SIGHUP)")
    p.add_argument("--canary-interval", type=_positive, default=1.0, metavar="SECONDS",
                   help="seconds between canary probes (default 1)")
    # Quiet by default: warnings and errors. -v (info) adds state changes
    # and reloads, -vv (debug) everything.
    add_log_flags(p, default="warning", verbose_alias=True)
    add_tls_arguments(p)
    return p


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    setup_from_args(args)
    if err := tls_usage_error(args):
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    try:
        tls = tls_from_args(args)
    except TlsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1

    from healthplane.checker.reload import FileConfig
    from healthplane.proto.config.errors import ConfigError

    from healthplane.runtime.files import UnreadableFile
    from healthplane.runtime.listen import parse_listen

    config = FileConfig(args.checks, args.fleet, args.checker_id)
    try:
        digest = config.fingerprint()   # before loading: a change meanwhile is seen
    except UnreadableFile:
        digest = None                  # the loader names the unreadable file
    try:
        registry, fleet = config.load_here()
    except ConfigError as exc:
        for line in exc.errors:
            print(f"{PROG}: {line}", file=sys.stderr)
        return 1
    if tls is not None and args.checker_id not in certificate_dns_names(tls.material):
        log.warning("the TLS certificate does not name this checker: aggregators will drop "
                    "every snapshot of it (identity_mismatch)",
                    extra={"checker": args.checker_id, "certificate": args.tls_cert})
    if fleet.region_of(args.checker_id) is None:
        known = ", ".join(fleet.checker_ids) or "none"
        print(f"{PROG}: {args.fleet}: --id {args.checker_id!r} is not a checker of the "
              f"fleet (known: {known})", file=sys.stderr)
        return 1
    metrics_addr = None
    if args.metrics:
        try:
            metrics_addr = parse_listen(args.metrics)
        except ValueError as exc:
            print(f"{PROG}: --metrics: {exc}", file=sys.stderr)
            return 2
    if args.canary_interval <= 0:
        print(f"{PROG}: --canary-interval must be > 0", file=sys.stderr)
        return 2
    try:
        return run_event_loop(_serve(args, registry, fleet, config, metrics_addr, digest, tls))
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, details at -vv
        log.debug("fatal", exc_info=True)
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


async def _serve(args, registry, fleet, config, metrics_addr, digest, tls=None) -> int:
    from healthplane.checker import metrics as metrics_mod
    from healthplane.checker.reload import adopt_into
    from healthplane.checker.runner import Checker

    from healthplane.runtime.clock import SystemClock
    from healthplane.runtime.reload import Reloader

    clock = SystemClock()
    metrics = metrics_mod.CheckerMetrics()
    if tls is not None:
        from healthplane.runtime.tls_metrics import TlsCollector
        metrics.registry.register(TlsCollector(tls, "healthplane_checker_"))
    checker = Checker(registry, fleet, args.checker_id, clock=clock, metrics=metrics,
                      canary_interval=args.canary_interval, tls=tls)
    http_server = None
    if metrics_addr is not None:
        http_server = SidePort(metrics.registry, lambda: metrics_mod.readiness(checker))
        try:
            bound = await http_server.start(*metrics_addr)
        except OSError as exc:
            raise OSError(f"--metrics {args.metrics}: {exc.strerror or exc}") from None
        from healthplane.runtime.listen import format_hostport
        maddress = format_hostport(metrics_addr[0], bound)
        log.info("metrics on http://%s/metrics", maddress, extra={"address": maddress})

    async def adopt(new) -> bool:
        if not await adopt_into(checker, new):
            return False
        gc.freeze()    # the new config's objects live long too (see below)
        return True

    # Changed files are loaded and tasted in a child process (FileConfig.load).
    reloader = Reloader("config", config.load, adopt, clock=clock, period=args.reload_period,
                        count=lambda result: metrics.config_reloads.labels(result).inc(),
                        fingerprint=config.fingerprint, running=digest, logger=log)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, checker.stop)

    certs = (tls_reloader(tls, clock=clock, period=args.reload_period, logger=log)
             if tls is not None else None)

    def hangup() -> None:
        reloader.trigger()
        if certs is not None:
            certs.trigger()

    loop.add_signal_handler(signal.SIGHUP, hangup)
    watch_parent(loop)
    from healthplane.checker.probes import engine

    log.info("probe engine: %s", engine.path(), extra={"probe_engine": engine.path()})
    log.info("started", extra={"checker": args.checker_id, "region": checker.region,
                               "checks": registry.check_count, "owned": checker.indices.size,
                               "aggregators": len(fleet.aggregators)})
    # Everything built so far lives as long as the process. Freezing it keeps
    # it out of the cyclic GC's full collections, which otherwise walk every
    # prober and check and stall the loop (~200 ms at 50,000 checks).
    gc.freeze()
    reload_task = loop.create_task(reloader.run())
    tls_task = loop.create_task(certs.run()) if certs is not None else None
    notify.ready(f"checker {args.checker_id}: {checker.indices.size} checks owned")
    try:
        await checker.run()
    finally:
        notify.stopping()
        reloader.stop()
        if certs is not None:
            certs.stop()
        reload_task.cancel()
        if tls_task is not None:
            tls_task.cancel()
        await asyncio.gather(reload_task, *([tls_task] if tls_task else []),
                             return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if http_server is not None:
            await http_server.stop()
    if checker.failed is not None:
        raise checker.failed
    log.info("stopped", extra={"checker": args.checker_id})
    return 0
