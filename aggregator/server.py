"""Wiring of one aggregator: state, tick loop, gRPC services, file and metrics.

Run it in-process (tests, the demo) with :func:`run_aggregator`::

    async with run_aggregator(registry, fleet, listen="127.0.0.1:0") as agg:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{agg.port}")

Pass ``clock=FakeClock()`` and ``start_ticking=False`` to drive ticks by
hand with ``agg.on_tick()``. The server enables
gRPC server reflection and the standard ``grpc.health.v1`` service.

With ``tls=TlsFiles(...)`` the server speaks only TLS and requires a client
certificate signed by the CA; snapshots then count only for the checker ids
their stream's certificate names (see :mod:`healthplane.aggregator.ingest`).
Without it, only a loopback address may be served unless ``insecure=True``.
``limits`` bounds connections, streams and watchers
(:mod:`healthplane.aggregator.limits`).

A gRPC server that stops unasked (see :mod:`healthplane.aggregator.liveness`)
sets :attr:`Aggregator.died`, and the command exits non-zero at once so that
a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from healthplane.aggregator.guarded_health import GuardedHealthService
from healthplane.aggregator.ingest import IngestService
from healthplane.aggregator.limits import Admission, Limits, fit_open_files
from healthplane.aggregator.liveness import server_stopped
from healthplane.aggregator.metrics import AggregatorMetrics, AggregatorStats
from healthplane.aggregator.readiness import AggregatorReadiness
from healthplane.aggregator.security_metrics import SecurityCollector
from healthplane.aggregator.sequence import SequenceMarks
from healthplane.aggregator.snapshot_file import SnapshotFileWriter
from healthplane.aggregator.state import AggregatorState, max_message_bytes, transport_limit
from healthplane.aggregator.stats import aggregator_stats
from healthplane.aggregator.status_page import StatusPage
from healthplane.aggregator.tick_result import TickResult
from healthplane.aggregator.tickloop import TickLoop
from healthplane.aggregator.transitions import log_transitions
from healthplane.aggregator.warmstart import WarmUp, first_sequence, restore
from healthplane.aggregator.watchers import LatestHub
from healthplane.proto.config.model import Fleet, Registry
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.clock import Clock, SystemClock
from healthplane.runtime.grpclog import sanitize_grpc_logs
from healthplane.runtime.listen import (
    check_bindable,
    format_hostport,
    is_loopback,
    parse_listen,
)
from healthplane.runtime.tls import TlsFiles

log = logging.getLogger("healthplane.aggregator")

SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["Ingest"].full_name,
    pb.DESCRIPTOR.services_by_name["Health"].full_name,
)


class ReloadRefused(Exception):
    """A new configuration that this running aggregator cannot adopt."""


class InsecureListen(OSError):
    """A plaintext gRPC listener on a non-loopback address without --insecure."""


class Aggregator:
    """One aggregator. Build, ``await start(listen)``, ``await stop()``."""

    # The status page behind the side port (start(metrics_listen=...)); None without it.
    status_page: StatusPage | None = None

    def __init__(self, registry: Registry, fleet: Fleet, *, clock: Clock | None = None,
                 snapshot_file: str | None = None,
                 tls: TlsFiles | None = None, limits: Limits | None = None,
                 warm_up: bool = True) -> None:
        self.clock: Clock = clock or SystemClock()
        self.tls = tls
        self._limits_asked = limits or Limits()
        self.limits = self._limits_asked.for_fleet(len(fleet.checker_ids))
        self.marks = SequenceMarks()
        self.report_admission = Admission("Report", self.limits.max_streams,
                                          self.limits.max_streams_per_peer)
        self.watch_admission = Admission("Watch", self.limits.max_watchers,
                                         self.limits.max_watchers_per_peer)
        self.died: asyncio.Event = asyncio.Event()   # the server stopped unasked
        self.death_reason = ""
        self.state = AggregatorState(registry, fleet, self.clock)
        self.hub: LatestHub[TickResult] = LatestHub()
        self.snapshot_writer = SnapshotFileWriter(snapshot_file) if snapshot_file else None
        persisted = (restore(self.state, snapshot_file, self.clock.wall_ms())
                     if snapshot_file else None)
        # Ticks are numbered from above the file's and the wall clock's
        # (warmstart.first_sequence), so a client sees them only grow.
        self.state.sequence = self.state.sequence_base = (
            first_sequence(persisted, self.clock.wall_ms()) - 1)
        self.warmup = WarmUp(self.clock.now(), fleet.stale_after if warm_up else 0.0)
        self.metrics = AggregatorMetrics(self.stats)
        self.metrics.registry.register(SecurityCollector(
            (self.report_admission, self.watch_admission),
            lambda: self.limits.max_connections, tls))
        self.tick_loop = TickLoop(self.on_tick, fleet.tick, self.clock)
        self.reloads: Counter[str] = Counter()
        self.transport_limit = transport_limit(registry.check_count)
        self.server: grpc.aio.Server | None = None
        self.port: int = 0
        self._health = health.aio.HealthServicer()
        self._loop_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.health_service: GuardedHealthService | None = None

    # -- the tick --------------------------------------------------------

    def on_tick(self) -> TickResult:
        """Compute the next tick from the slots and publish it everywhere.

        The tick loop calls it on schedule; tests may call it at any time.
        """
        t0 = time.perf_counter()
        was_warming = not self.warmup.warm
        warming = self.warmup.update(self.clock.now(), self.state.received)
        result = self.state.tick(warming)
        if was_warming and not warming:
            log.info("warm", extra={"after_s": round(self.clock.now() - self.warmup.started, 2),
                                    "reason": self.warmup.reason})
        self.hub.publish(result)
        log_transitions(self.state, result)
        if self.snapshot_writer is not None and not warming:
            # File readers cannot see "warming": they keep the previous run's
            # last tick until this run has heard the fleet.
            self.snapshot_writer.submit(result)
        self.metrics.tick_duration.observe(time.perf_counter() - t0)
        return result

    def stats(self) -> AggregatorStats:
        """The figures the metrics report, as of now (cheap: no per-check work)."""
        return aggregator_stats(self.state, self.tick_loop, self.hub, self.snapshot_writer,
                                self.reloads, warming=self.warming)

    @property
    def warming(self) -> bool:
        """True until the warm-up after start is over (see aggregator.warmstart)."""
        return not self.warmup.warm

    # -- configuration ---------------------------------------------------

    def adopt(self, registry: Registry, fleet: Fleet) -> bool:
        """Switch to a new configuration; returns False when it is the same one.

        Checkers' latest snapshots and each check's memory (last known
        status, last change time) carry over by id; ticks keep their sequence.

        Raises ReloadRefused when this process cannot take it without a
        restart (a registry too large for the transport's message limit).
        """
        st = self.state
        if registry.version == st.registry.version and fleet == st.fleet:
            return False
        needed = max_message_bytes(max(registry.check_count, st.registry.check_count))
        if needed > self.transport_limit:
            raise ReloadRefused(
                f"registry of {registry.check_count} checks needs messages of up to "
                f"{needed} bytes, over this process's limit of {self.transport_limit}; "
                "restart the aggregator to adopt it")
        st.adopt(registry, fleet)
        # A derived stream cap follows the fleet (gRPC's own call cap, set at
        # start, has room for unary calls on top).
        self.report_admission.total = self._limits_asked.for_fleet(
            len(fleet.checker_ids)).max_streams
        if fleet.tick != self.tick_loop.interval and self._loop_task is not None:
            self._restart_loop(fleet.tick)
        return True

    def _restart_loop(self, interval: float) -> None:
        assert self._loop_task is not None
        self._loop_task.cancel()
        old = self.tick_loop
        self.tick_loop = TickLoop(self.on_tick, interval, self.clock)
        self.tick_loop.missed, self.tick_loop.failed = old.missed, old.failed
        self._loop_task = asyncio.create_task(self.tick_loop.run(), name="tick-loop")

    # -- lifecycle -------------------------------------------------------

    async def start(self, listen: str, *, metrics_listen: str | None = None,
                    start_ticking: bool = True, insecure: bool = False) -> int:
        """Bind, serve and start ticking; returns the bound gRPC port.

        Raises InsecureListen for a plaintext non-loopback address without
        insecure=True, OSError when the address cannot be bound.
        """
        host, port = parse_listen(listen)
        if self.tls is None and not insecure and not is_loopback(host):
            raise InsecureListen(
                f"refusing to serve plaintext gRPC on {listen}: give --tls-cert, --tls-key "
                "and --tls-ca, or --insecure to accept unauthenticated votes")
        check_bindable(listen, host, port)
        sanitize_grpc_logs()
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            from healthplane.runtime.grpclog import loop_exception_handler
            loop.set_exception_handler(loop_exception_handler)
        self.limits = fit_open_files(self.limits)
        lim = self.limits
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", self.transport_limit),
            ("grpc.so_reuseport", 0),
            *lim.server_options(),
        ], maximum_concurrent_rpcs=lim.max_rpcs())
        authenticate = self.tls is not None
        IngestService(self.state, authenticate=authenticate, marks=self.marks,
                      admission=self.report_admission).add_to_server(server)
        self.health_service = GuardedHealthService(
            self.state, self.hub, admission=self.watch_admission,
            authenticate=authenticate)
        pb_grpc.add_HealthServicer_to_server(self.health_service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        address = format_hostport(host, port)
        try:
            if self.tls is None:
                bound = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, self.tls.server_credentials())
        except RuntimeError:  # grpc's way of saying the bind failed
            bound = 0
        if bound == 0:
            raise OSError(f"cannot listen on {listen}: address in use or not available")
        await server.start()
        self.server, self.port = server, bound
        self._watch_task = asyncio.create_task(self._watch_server(server), name="grpc-watch")
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if metrics_listen is not None:
            mhost, mport = parse_listen(metrics_listen)
            self.status_page = StatusPage(self.state)
            try:
                await self.metrics.serve(mhost, mport, AggregatorReadiness(self.state),
                                         self.status_page.routes())
            except OSError as exc:
                raise OSError(f"cannot serve metrics on {metrics_listen}: "
                              f"{exc.strerror or exc}") from None
        if self.snapshot_writer is not None:
            self.snapshot_writer.start()
        if start_ticking:
            self._loop_task = asyncio.create_task(self.tick_loop.run(), name="tick-loop")
        return bound

    async def _watch_server(self, server: grpc.aio.Server) -> None:
        reason = await server_stopped(server)
        if not self._stopping:
            self.death_reason = reason
            log.error("gRPC server stopped unasked; exiting so that a supervisor restarts "
                      "this aggregator", extra={"reason": reason})
            self.died.set()

    async def stop(self, grace: float = 1.0) -> None:
        """Stop ticking, end Watch streams, drain RPCs for up to grace seconds."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self._health.enter_graceful_shutdown()
        self.hub.close()
        if self.server is not None:
            await self.server.stop(grace)
            self.server = None
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task
            self._watch_task = None
        if self.snapshot_writer is not None:
            await self.snapshot_writer.stop()
        await self.metrics.close()


@contextlib.asynccontextmanager
async def run_aggregator(registry: Registry, fleet: Fleet, listen: str = "127.0.0.1:0", *,
                         clock: Clock | None = None,
                         snapshot_file: str | None = None, metrics_listen: str | None = None,
                         start_ticking: bool = True, grace: float = 0.5,
                         tls: TlsFiles | None = None, limits: Limits | None = None,
                         insecure: bool = False,
                         warm_up: bool = True) -> AsyncIterator[Aggregator]:
    """An aggregator serving on listen for the duration of the block."""
    agg = Aggregator(registry, fleet, clock=clock, snapshot_file=snapshot_file,
                     tls=tls, limits=limits, warm_up=warm_up)
    await agg.start(listen, metrics_listen=metrics_listen, start_ticking=start_ticking,
                    insecure=insecure)
    try:
        yield agg
    finally:
        await agg.stop(grace)
