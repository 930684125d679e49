"""``healthplane pdns-backend --zone zone.yaml --aggregator HOST:PORT [...] --socket PATH``.

Answers PowerDNS's remote backend (``launch=remote``,
``remote-connection-string=unix:path=PATH``) from the freshest health
snapshot, with the same answer rules as ``healthplane dns``: the same
consumer follows the aggregators and the same table is rebuilt per snapshot.

Options:

    --checks PATH            checks.yaml: reject a zone that names unknown checks
    --tick SECONDS           the aggregators' tick period (default: learned)
    --stale-after SECONDS    fail open once the snapshot is older (default 30; 0 never)
    --nameserver NAME        NS names when zone.yaml has no ``nameservers``
    --reload-period SECS     re-read zone.yaml this often (default 60; 0: only on SIGHUP;
                             --reload-interval is an alias)
    --metrics HOST:PORT      (alias --http) the HTTP side port: /metrics, /healthz,
                             /readyz
    --log-level LEVEL        debug | info | warning | error (default info)
    --log-format FORMAT      logfmt | json (default logfmt)
    --tls-cert/--tls-key/--tls-ca FILE
                             mutual TLS to the aggregators (re-read on SIGHUP
                             and every --reload-period)

Start it before pdns_server: PowerDNS fills its zone cache from
``getAllDomains`` at start and exits when the socket is not there. The
bound socket is logged as ``listening on unix:PATH``. SIGHUP reloads the
zone (tasted first, as for ``healthplane dns``); SIGTERM and SIGINT stop.
Exit 0 after a clean stop, 1 for a bad config or socket, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys

from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Zone

from healthplane.runtime.flags import reload_period
from healthplane.runtime.listen import parse_hostport, parse_listen
from healthplane.runtime.logs import add_log_flags, setup_from_args
from healthplane.runtime.loop import run_event_loop
from healthplane.runtime.tls import add_tls_arguments, tls_usage_error

from .startup import Lifecycle, StartupError, consumer_for, read_tls

PROG = "healthplane pdns-backend"
log = logging.getLogger("healthplane.pdns")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Answer PowerDNS's remote backend "
                                "from aggregator health snapshots.")
    p.add_argument("--zone", required=True, metavar="PATH", help="zone.yaml")
    p.add_argument("--aggregator", required=True, action="append", metavar="HOST:PORT",
                   help="an aggregator's Health service; repeat for failover")
    p.add_argument("--socket", required=True, metavar="PATH", help="the Unix socket to serve")
    p.add_argument("--checks", metavar="PATH", help="checks.yaml, to verify the zone's check ids")
    p.add_argument("--tick", type=float, metavar="SECONDS", help="aggregator tick period")
    p.add_argument("--stale-after", type=float, default=30.0, metavar="SECONDS",
                   help="fail open when the snapshot is older than this; 0 never (default 30)")
    p.add_argument("--nameserver", action="append", default=[], metavar="NAME",
                   help="NS name of the zone, repeatable (default ns1.<zone>)")
    p.add_argument("--reload-period", "--reload-interval", type=reload_period, default=60.0,
                   metavar="SECONDS", dest="reload_period",
                   help="re-read zone.yaml this often; 0 only on SIGHUP (default 60)")
    p.add_argument("--metrics", "--http", metavar="HOST:PORT",
                   help="serve the HTTP side port: /metrics, /healthz, /readyz "
                   "(ready once a fresh health snapshot arrived)")
    add_log_flags(p, default="info")
    add_tls_arguments(p)
    return p


def _usage_error(args: argparse.Namespace) -> str | None:
    for flag, values in (("--aggregator", args.aggregator),
                         ("--metrics", [args.metrics] if args.metrics else [])):
        parse = parse_hostport if flag == "--aggregator" else parse_listen
        for text in values:
            try:
                parse(text)
            except ValueError as exc:
                return f"{flag}: {exc}"
    if args.tick is not None and not 0 < args.tick <= 3600:
        return "--tick must be in (0, 3600]"
    if args.stale_after < 0 or args.reload_period < 0:
        return "--stale-after and --reload-period must be >= 0"
    if len(os.fsencode(args.socket)) > 107:
        return "--socket: path longer than a Unix socket allows (107 bytes)"
    return tls_usage_error(args)


async def _serve(args: argparse.Namespace, zone: Zone) -> int:
    try:
        return await _serve_backend(args, zone)
    except StartupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


async def _serve_backend(args: argparse.Namespace, zone: Zone) -> int:
    from .keeper import AnswerKeeper
    from .pdns_backend import RemoteBackend, serve_unix

    tls = read_tls(args)
    consumer = consumer_for(args, tls)
    keeper = AnswerKeeper(zone, consumer, lambda _table: None, stale_after=args.stale_after,
                          nameservers=args.nameserver)
    backend = RemoteBackend(lambda: keeper.table)
    life = Lifecycle(args, keeper, keeper.adopt_zone, tls, log)
    try:
        server = await serve_unix(backend, args.socket)
    except OSError as exc:
        raise StartupError(f"cannot listen on {args.socket}: {exc.strerror or exc}") from None

    async def close() -> None:
        server.close()

    closers = [close]
    if args.metrics:
        from .pdns_metrics import side_port
        httpd = side_port(backend, consumer, keeper, args.stale_after)
        try:
            await life.side_port(httpd, args.metrics, "healthplane_pdns_")
        except StartupError:
            server.close()
            raise
        closers.append(httpd.stop)

    async def unlink() -> None:
        with contextlib.suppress(OSError):
            os.unlink(args.socket)

    closers.append(unlink)
    log.info("listening on unix:%s", args.socket,
             extra={"socket": args.socket, "zone": zone.zone, "records": len(zone.records),
                    "aggregators": ",".join(args.aggregator)})

    def stopping() -> None:
        log.info("stopping", extra={f"requests_{k}": v for k, v in backend.stats.items()
                                    if k.isidentifier()})

    return await life.run(consumer, {}, closers, on_stop=stopping)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    args = _parser().parse_args(argv)
    setup_from_args(args)
    if err := _usage_error(args):
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    from healthplane.proto.config.loader import load_checks, load_zone
    try:
        registry = load_checks(args.checks, allow_private_targets=True) if args.checks else None
        zone = load_zone(args.zone, registry)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"{PROG}: {line}", file=sys.stderr)
        return 1
    return run_event_loop(_serve(args, zone))
