"""``healthplane dns --zone zone.yaml --aggregator HOST:PORT [...] --listen HOST:PORT``.

An authoritative DNS server (UDP and TCP on the same port) for the zone in
zone.yaml, answering from the freshest health snapshot of the aggregators.

Options:

    --checks PATH            checks.yaml: reject a zone that names unknown checks
    --metrics HOST:PORT      (alias --http) the HTTP side port: /metrics, /healthz,
                             /readyz
    --tick SECONDS           the aggregators' tick period (default: learned from
                             the snapshots; 1 s until two have arrived)
    --stale-after SECONDS    fail open (serve every value) once the freshest
                             snapshot is older than this (default 30; 0: keep
                             the last known health forever)
    --nameserver NAME        the zone's NS names, repeatable (default ns1.<zone>);
                             the first is the SOA's primary name server
    --max-udp-payload BYTES  largest UDP response and the EDNS size we advertise
                             (default 1232)
    --tcp-idle-timeout SECS  close a DNS-over-TCP connection with no complete
                             query for this long (default 10)
    --tcp-max-lifetime SECS  close any DNS-over-TCP connection after this long,
                             however busy (default 60)
    --max-tcp-connections N  concurrent DNS-over-TCP connections; when full, a
                             new one takes the slot quiet the longest (default 128)
    --max-tcp-per-client N   concurrent connections from one address (an IPv6
                             client by its /64; default 16)
    --reload-period SECS     re-read zone.yaml this often when it changed
                             (default 60; 0: only on SIGHUP)
    --serial-file PATH       keep the SOA serial here, so it grows across restarts
                             even when changes ran ahead of the clock
    --log-level LEVEL        debug | info | warning | error (default info)
    --log-format FORMAT      logfmt | json (default logfmt)

SIGHUP re-reads zone.yaml: a changed zone is loaded and tasted (every answer
and the zone transfer built) in a child process first, and a bad one keeps
the running zone, logged and counted (``healthplane_dns_zone_reloads``).
With zone.yaml's ``transfer``, the front also serves AXFR/IXFR to the
allowed secondaries and sends them NOTIFY when an answer changed.

``--listen 127.0.0.1:0`` picks a free port; the bound address is logged as
``listening on HOST:PORT (udp+tcp)``. Until the first health snapshot from
a warm aggregator arrives, names of the zone get SERVFAIL (a resolver then
asks another server of the zone) rather than answers from no data.
SIGTERM and SIGINT stop it. Exit 0 after a clean stop, 1 for a bad config or
a port that cannot be bound, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import dns.exception
import dns.name
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Zone

from healthplane.runtime import notify
from healthplane.runtime.flags import reload_period
from healthplane.runtime.listen import format_hostport, parse_hostport, parse_listen
from healthplane.runtime.logs import add_log_flags, setup_from_args
from healthplane.runtime.loop import run_event_loop
from healthplane.runtime.parent import watch_parent
from healthplane.runtime.tls import add_tls_arguments, tls_usage_error

from .startup import Lifecycle, StartupError, consumer_for, read_tls

PROG = "healthplane dns"
log = logging.getLogger("healthplane.dns")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Serve a health-aware DNS zone "
                                "from aggregator health snapshots.")
    p.add_argument("--zone", required=True, metavar="PATH", help="zone.yaml")
    p.add_argument("--aggregator", required=True, action="append", metavar="HOST:PORT",
                   help="an aggregator's Health service; repeat for failover (tried in order, "
                   "and the front stays on one while it keeps ticking)")
    p.add_argument("--listen", default="127.0.0.1:5353", metavar="HOST:PORT",
                   help="DNS address, UDP and TCP (default 127.0.0.1:5353; port 0 picks one)")
    p.add_argument("--checks", metavar="PATH", help="checks.yaml, to verify the zone's check ids")
    p.add_argument("--metrics", "--http", metavar="HOST:PORT",
                   help="serve the HTTP side port: /metrics, /healthz, /readyz "
                   "(ready once a fresh health snapshot arrived)")
    p.add_argument("--tick", type=float, metavar="SECONDS",
                   help="aggregator tick period (default: learned)")
    p.add_argument("--stale-after", type=float, default=30.0, metavar="SECONDS",
                   help="fail open when the snapshot is older than this; 0 never (default 30)")
    p.add_argument("--nameserver", action="append", default=[], metavar="NAME",
                   help="NS name of the zone, repeatable (default ns1.<zone>)")
    p.add_argument("--max-udp-payload", type=int, default=1232, metavar="BYTES",
                   help="largest UDP response, and the EDNS size advertised (default 1232)")
    p.add_argument("--tcp-idle-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close a TCP connection with no complete query for this long "
                   "(default 10)")
    p.add_argument("--tcp-max-lifetime", type=float, default=60.0, metavar="SECONDS",
                   help="close any TCP connection after this long (default 60)")
    p.add_argument("--max-tcp-connections", type=int, default=128, metavar="N",
                   help="concurrent TCP connections; when full a new one takes the slot "
                   "quiet the longest (default 128)")
    p.add_argument("--max-tcp-per-client", type=int, default=16, metavar="N",
                   help="concurrent TCP connections from one client (default 16)")
    p.add_argument("--reload-period", "--reload-interval", type=reload_period, default=60.0,
                   metavar="SECONDS", dest="reload_period",
                   help="re-read zone.yaml this often; 0 only on SIGHUP (default 60)")
    p.add_argument("--serial-file", metavar="PATH",
                   help="keep the SOA serial here so it grows across restarts")
    add_log_flags(p, default="info")
    add_tls_arguments(p)
    return p


def _usage_error(args: argparse.Namespace) -> str | None:
    for flag, values in (("--listen", [args.listen]), ("--aggregator", args.aggregator),
                         ("--metrics", [args.metrics] if args.metrics else [])):
        parse = parse_hostport if flag == "--aggregator" else parse_listen
        for text in values:
            try:
                parse(text)
            except ValueError as exc:
                return f"{flag}: {exc}"
    if args.tick is not None and not 0 < args.tick <= 3600:
        return "--tick must be in (0, 3600]"
    if args.stale_after < 0:
        return "--stale-after must be >= 0"
    if not 512 <= args.max_udp_payload <= 65535:
        return "--max-udp-payload must be 512..65535"
    if args.tcp_idle_timeout <= 0:
        return "--tcp-idle-timeout must be > 0"
    if args.tcp_max_lifetime <= 0:
        return "--tcp-max-lifetime must be > 0"
    if args.max_tcp_connections < 1:
        return "--max-tcp-connections must be >= 1"
    if args.max_tcp_per_client < 1:
        return "--max-tcp-per-client must be >= 1"
    if args.reload_period < 0:
        return "--reload-period must be >= 0"
    if err := tls_usage_error(args):
        return err
    for name in args.nameserver:
        try:
            dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            return f"--nameserver {name!r}: {exc}"
    return None


def _load(args: argparse.Namespace) -> Zone:
    from healthplane.proto.config.loader import load_checks, load_zone
    # Only the ids matter here; probing policy is the checkers' business.
    registry = (load_checks(args.checks, allow_private_targets=True)
                if args.checks else None)
    return load_zone(args.zone, registry)


async def _serve(args: argparse.Namespace, zone: Zone) -> int:
    try:
        return await _serve_front(args, zone)
    except StartupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


async def _serve_front(args: argparse.Namespace, zone: Zone) -> int:
    from .apex import SerialClock, read_serial, write_serial
    from .keeper import AnswerKeeper
    from .notify import Notifier
    from .server import DnsFront
    from .tcp import TcpLimits
    from .transfer import TransferPolicy
    from .udp import path_name as udp_path

    tls = read_tls(args)
    consumer = consumer_for(args, tls)
    front: DnsFront | None = None
    notifier = Notifier(zone.zone, (), min_interval=lambda: consumer.tick_period,
                        soa=lambda: front.table.soa if front is not None else None)

    def publish(table: object) -> None:
        if front is not None:
            front.table = table  # type: ignore[assignment]
            front.ready = True   # the keeper publishes only from a snapshot (or failing open)
            if not front.transfers_ready and consumer.snapshot is not None:
                # The first answers from real health: now secondaries may have them.
                front.transfers_ready = True
                notifier.changed()

    def serial_moved(serial: int) -> None:
        if args.serial_file:
            write_serial(args.serial_file, serial)
        if front is not None and front.transfers_ready:
            notifier.changed(serial)

    serials = SerialClock(floor=read_serial(args.serial_file) if args.serial_file else 0,
                          on_change=serial_moved)
    keeper = AnswerKeeper(zone, consumer, publish, stale_after=args.stale_after,
                          nameservers=args.nameserver, serials=serials)
    front = DnsFront(keeper.table, max_udp=args.max_udp_payload, tcp_limits=TcpLimits(
        idle_timeout=args.tcp_idle_timeout, max_lifetime=args.tcp_max_lifetime,
        max_connections=args.max_tcp_connections, max_per_client=args.max_tcp_per_client),
        ready=False)

    def use_transfer(z: Zone) -> None:
        policy = TransferPolicy(z.transfer) if z.transfer is not None else None
        assert front is not None
        front.transfer = policy
        notifier.retarget(z.zone, policy.notify if policy else (), policy.key if policy else None)

    def adopt(z: Zone) -> None:
        use_transfer(z)
        keeper.adopt_zone(z)

    front.transfers_ready = False
    use_transfer(zone)
    life = Lifecycle(args, keeper, adopt, tls, log)
    watch_parent(asyncio.get_running_loop())
    host, port = parse_listen(args.listen)
    try:
        bound = await front.start(host, port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    closers = [front.stop]
    if args.metrics:
        from .metrics import side_port
        httpd = side_port(front, consumer, keeper, args.stale_after)
        try:
            await life.side_port(httpd, args.metrics, "healthplane_dns_")
        except StartupError:
            await front.stop()
            raise
        closers.append(httpd.stop)
    address = format_hostport(host, bound)
    log.info("listening on %s (udp+tcp)", address,
             extra={"address": address, "zone": zone.zone, "records": len(zone.records),
                    "aggregators": ",".join(args.aggregator),
                    "fast_path": udp_path(front)})

    def stopping() -> None:
        notify.stopping()
        log.info("stopping")

    notify.ready(f"listening on {address} for zone {zone.zone}")
    return await life.run(consumer, {"notify": notifier.run}, closers, on_stop=stopping)


def main(argv: list[str]) -> int:
    # Until the event loop takes SIGHUP over, a reload request must not kill the front.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    args = _parser().parse_args(argv)
    setup_from_args(args)
    if err := _usage_error(args):
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    try:
        zone = _load(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"{PROG}: {line}", file=sys.stderr)
        return 1
    return run_event_loop(_serve(args, zone))
