"""What ``healthplane dns`` and ``healthplane pdns-backend`` both do around their server.

Both read the TLS files for their aggregator channels, follow the aggregators
with one consumer, reload zone.yaml (tasted first) and the TLS files on
SIGHUP and every ``--reload-period``, stop on SIGTERM and SIGINT, may serve
an HTTP side port, and run the same background tasks until stopped. Only the
server in the middle differs, so it is all here once.

A step that cannot go on raises :class:`StartupError`; the command prints its
one line and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence

from healthplane.proto.config.model import Zone

from healthplane.runtime.listen import format_hostport, parse_listen
from healthplane.runtime.sideport import SidePort
from healthplane.runtime.tls import TlsError, TlsFiles, tls_from_args, tls_reloader

from .consumer import HealthConsumer
from .keeper import AnswerKeeper
from .reload import ZoneFiles, zone_reloader


class StartupError(Exception):
    """A start-up step failed; the message is the one line to print."""


def read_tls(args: argparse.Namespace) -> TlsFiles | None:
    """The --tls-* files, read and checked now (None without them)."""
    try:
        return tls_from_args(args)
    except TlsError as exc:
        raise StartupError(str(exc)) from None


def consumer_for(args: argparse.Namespace, tls: TlsFiles | None) -> HealthConsumer:
    return HealthConsumer(args.aggregator, tick=args.tick, tls=tls)


class Lifecycle:
    """Signals, reloads and background tasks of one DNS-side command."""

    def __init__(self, args: argparse.Namespace, keeper: AnswerKeeper,
                 adopt: Callable[[Zone], object], tls: TlsFiles | None,
                 logger: logging.Logger) -> None:
        self.keeper = keeper
        self.log = logger
        self.tls = tls
        self.zone_reload = zone_reloader(ZoneFiles(args.zone, args.checks), adopt,
                                         lambda: keeper.zone, keeper.reloads,
                                         clock=keeper.clock, period=args.reload_period)
        # The next Watch channel (after a break or a switch) uses new TLS files.
        self.certs = (tls_reloader(tls, clock=keeper.clock, period=args.reload_period,
                                   logger=logger) if tls is not None else None)
        # Handlers before the port opens: whoever sees the server up may signal it at once.
        self.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.hangup)

    def hangup(self) -> None:
        self.zone_reload.trigger()
        if self.certs is not None:
            self.certs.trigger()

    async def side_port(self, httpd: SidePort, listen: str, prefix: str) -> None:
        """Start the HTTP side port at listen (with TLS file metrics when TLS is on)."""
        host, port = parse_listen(listen)
        if self.tls is not None:
            from healthplane.runtime.tls_metrics import TlsCollector
            httpd.registry.register(TlsCollector(self.tls, prefix))
        try:
            bound = await httpd.start(host, port)
        except OSError as exc:
            raise StartupError(f"cannot serve metrics on {listen}: "
                               f"{exc.strerror or exc}") from None
        address = format_hostport(host, bound)
        self.log.info("metrics on http://%s/metrics", address, extra={"address": address})

    async def run(self, consumer: HealthConsumer,
                  extra: dict[str, Callable[[], Coroutine[object, object, None]]],
                  closers: Sequence[Callable[[], Awaitable[object]]],
                  on_stop: Callable[[], object] = lambda: None) -> int:
        """Follow the aggregators and run the tasks until SIGTERM or SIGINT; then
        stop them, the consumer and, in order, each of closers. Returns 0."""
        await consumer.start()
        jobs = {"answer-keeper": self.keeper.run, "zone-reload": self.zone_reload.run, **extra}
        if self.certs is not None:
            jobs["tls-reload"] = self.certs.run
        tasks = [asyncio.create_task(job(), name=name) for name, job in jobs.items()]
        try:
            await self.stop.wait()
        finally:
            on_stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await consumer.stop()
            for close in closers:
                await close()
        return 0
