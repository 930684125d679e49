"""One checker of a fleet: probes on schedule, doubts itself, reports.

:class:`Checker` ties the parts together and owns their tasks:

* a :class:`~healthplane.checker.plan.Plan` per configuration: a
  :class:`~healthplane.checker.dispatch.Dispatcher` for the checks this
  checker owns, and a second, small one for the canaries;
* a report loop on a fixed schedule (``report_interval``) that builds one
  snapshot of the whole registry (:mod:`healthplane.checker.snapshot`), applies
  self-doubt (:mod:`healthplane.checker.selfdoubt`) and offers it to every aggregator's
  stream (:mod:`healthplane.checker.streams`);
* :meth:`Checker.adopt` to switch to a new registry and fleet while running.

Typical use::

    checker = Checker(registry, fleet, "use1-a", metrics=CheckerMetrics())
    task = asyncio.create_task(checker.run())
    ...
    checker.stop(); await task
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import numpy as np
from healthplane.checker import snapshot
from healthplane.checker.dispatch import Dispatcher
from healthplane.checker.fdlimit import fit_probe_limit
from healthplane.checker.metrics import CERT_WINDOWS_DAYS, CheckerMetrics
from healthplane.checker.plan import MakeProber, Plan, Planner, default_make_prober
from healthplane.checker.rollout import Previous
from healthplane.checker.selfdoubt import DoubtPolicy, SelfDoubt
from healthplane.checker.streams import AggregatorStream
from healthplane.proto.codec import state_name
from healthplane.proto.config.model import Fleet, Registry

from healthplane.runtime.clock import Clock, SystemClock
from healthplane.runtime.grid import GridLoop
from healthplane.runtime.memory import release_free_memory
from healthplane.runtime.tls import TlsFiles

log = logging.getLogger("healthplane.checker")

class Checker:
    """A running checker. Construct, then await run(); stop() ends it.

    registry, fleet, checker_id: the validated config and who this is
        (UnknownChecker if checker_id is not in the fleet).
    clock: time source and sleeper (default the real monotonic clock).
    make_prober: ``make_prober(check, *, allow_private) -> Prober``
        (default :func:`checker.probes.make_prober`).
    metrics: where counters go (default a fresh registry).
    rng: randomness for reconnect jitter.
    canary_interval, canary_threshold: how canaries are probed (tcp,
        timeout min(1 s, interval)) and how many results flip them.
    late_cap: a slot more than min(interval / 2, late_cap) late is skipped
        (default 0.5 s).
    doubt: the self-doubt policy (see :mod:`healthplane.checker.selfdoubt`).
    stream_backoff: (base, cap) seconds for reconnecting Report streams.

    Readable while running: ``registry``, ``fleet``, ``region``, ``indices``
    (per dispatcher row, the registry index probed), ``dispatcher``, ``doubt``,
    ``sequence``, ``last_states`` (the states of the latest snapshot), ``streams``,
    ``report_loop`` (the report schedule, a
    :class:`~healthplane.runtime.grid.GridLoop`: ``missed`` counts skipped reports).
    """

    def __init__(self, registry: Registry, fleet: Fleet, checker_id: str, *,
                 clock: Clock | None = None, make_prober: MakeProber | None = None,
                 metrics: CheckerMetrics | None = None, rng: random.Random | None = None,
                 canary_interval: float = 1.0, canary_threshold: int = 2,
                 late_cap: float = 0.5, doubt: DoubtPolicy | None = None,
                 stream_backoff: tuple[float, float] = (0.2, 10.0),
                 tls: TlsFiles | None = None) -> None:
        self.checker_id = checker_id
        self.tls = tls
        self.clock = clock or SystemClock()
        self.metrics = metrics or CheckerMetrics()
        self.rng = rng or random.Random()
        self._planner = Planner(checker_id, self.clock, make_prober or default_make_prober,
                                self.metrics, late_cap, canary_interval, canary_threshold)
        self.stream_backoff = stream_backoff
        self.doubt = SelfDoubt(doubt)
        self.sequence = 0
        # Wall time on purpose, not the injected clock: it tells this run of
        # the process from earlier ones, so it must grow across restarts.
        self.incarnation = time.time_ns() // 1000
        self.last_states: np.ndarray = np.zeros(0, dtype=np.uint8)
        self.previous: Previous | None = None
        self._streams: dict[str, tuple[AggregatorStream, asyncio.Task[None] | None]] = {}
        # Reports on a fixed grid. A report more than half an interval late
        # is skipped, so two reports are never closer than half an interval
        # (a stall ends with at most one late report, never a burst).
        interval = fleet.report_interval
        self.report_loop = GridLoop(self._report, interval, self.clock,
                                    late_limit=interval / 2)
        self.failed: BaseException | None = None   # set when a loop died of a bug
        self._running = False
        self._tasks: list[asyncio.Task[None]] = []
        self.dispatcher: Dispatcher
        self.canaries: Dispatcher
        self.registry: Registry
        self._install(self._planner.plan(registry, fleet), carry=False)
        self.metrics.in_flight.set_function(lambda: self.dispatcher.in_flight)
        for days in CERT_WINDOWS_DAYS:
            self.metrics.certificates_expiring.labels(str(days)).set_function(
                self._expiring_within(days))

    def _expiring_within(self, days: int) -> Callable[[], float]:
        def count() -> float:
            return self.dispatcher.certificates_expiring(days * 86400.0,
                                                         self.clock.wall_ms() / 1000)
        return count

    # -- configuration ----------------------------------------------------

    def _install(self, plan: Plan, *, carry: bool) -> None:
        # Every probe in flight holds a socket: make sure the open-files
        # limit covers the concurrency limit (see healthplane.checker.fdlimit).
        plan.dispatcher.limit = fit_probe_limit(plan.dispatcher.limit, plan.canaries.limit)
        if carry and plan.registry.version != self.registry.version:
            # Aggregators that have not seen the new checks.yaml yet get our
            # reports remapped onto the registry being replaced (by id).
            self.previous = Previous.between(self.registry, plan.registry)
        if carry:
            plan.dispatcher.carry_from(self.dispatcher)
            plan.canaries.carry_from(self.canaries)
            for old in (self.dispatcher, self.canaries):
                old.stop()
        self.registry, self.fleet, self.region = plan.registry, plan.fleet, plan.region
        self.indices = plan.indices
        self.dispatcher, self.canaries = plan.dispatcher, plan.canaries
        self.doubt.rebase(0, 0)
        self._missed_seen = 0
        interval = plan.fleet.report_interval
        self.report_loop.period, self.report_loop.late_limit = interval, interval / 2
        self.metrics.checks_owned.set(plan.indices.size)
        self.metrics.concurrency_limit.set(plan.dispatcher.limit)
        # Planning made (and dropped) an object per check: return those pages.
        release_free_memory()
        log.info("plan adopted", extra={
            "checker": self.checker_id, "region": plan.region, "owns": plan.indices.size,
            "of": plan.registry.check_count, "registry": plan.registry.version,
            "limit": plan.dispatcher.limit})
        if self._running:
            self._start_dispatchers()
            self._sync_streams()

    def adopt(self, registry: Registry, fleet: Fleet) -> None:
        """Switch to a new registry and fleet; verdicts of kept check ids carry over.

        Raises UnknownChecker (and changes nothing) if this checker is not in
        the new fleet. Builds the new schedule on the calling thread: with
        a large registry prefer :meth:`adopt_async`.
        """
        self._install(self._planner.plan(registry, fleet), carry=True)

    async def adopt_async(self, registry: Registry, fleet: Fleet) -> None:
        """adopt(), building the new schedule and probers in a worker thread.

        With 100,000 checks that takes about a second of CPU; on the event
        loop it would stall the probe schedule for as long.
        """
        plan = await asyncio.to_thread(self._planner.plan, registry, fleet)
        self._install(plan, carry=True)

    # -- running ----------------------------------------------------------

    def _start_dispatchers(self) -> None:
        loop = asyncio.get_running_loop()
        for dispatcher in (self.dispatcher, self.canaries):
            task = loop.create_task(dispatcher.run())
            task.add_done_callback(self._task_ended)
            self._tasks.append(task)
        self._tasks = [t for t in self._tasks if not t.done()]

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A loop that dies of a bug stops the checker rather than leave it half-alive."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("internal error, stopping",
                  extra={"checker": self.checker_id, "error": f"{type(exc).__name__}: {exc}"},
                  exc_info=exc if log.isEnabledFor(logging.DEBUG) else None)
        self.failed = exc
        self.stop()

    def _sync_streams(self) -> None:
        wanted = set(self.fleet.aggregators)
        for address in list(self._streams):
            if address not in wanted:
                stream, task = self._streams.pop(address)
                stream.close()
                if task is not None:
                    task.cancel()
        base, cap = self.stream_backoff
        for address in self.fleet.aggregators:
            if address not in self._streams:
                stream = AggregatorStream(address, clock=self.clock, metrics=self.metrics,
                                          rng=self.rng, base=base, cap=cap,
                                          write_timeout=max(5.0, 5 * self.fleet.report_interval),
                                          tls=self.tls,
                                          max_age=2 * self.fleet.report_interval)
                task = asyncio.get_running_loop().create_task(stream.run())
                task.add_done_callback(self._task_ended)
                self._streams[address] = (stream, task)

    @property
    def streams(self) -> dict[str, AggregatorStream]:
        return {a: s for a, (s, _) in self._streams.items()}

    async def run(self) -> None:
        """Probe, doubt and report until stop()."""
        self._running = True
        self._start_dispatchers()
        self._sync_streams()
        try:
            await self.report_loop.run()
        finally:
            self._running = False
            self.dispatcher.stop()
            self.canaries.stop()
            tasks = list(self._tasks) + [t for _, t in self._streams.values() if t]
            for stream, _ in self._streams.values():
                stream.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._streams.clear()

    def stop(self) -> None:
        self.report_loop.stop()

    def _report(self) -> None:
        self.report_once()

    def report_once(self) -> snapshot.pb.CheckerSnapshot:
        """Build this report window's snapshot and offer it to every stream."""
        d, m = self.dispatcher, self.metrics
        d.flush()
        self.canaries.flush()
        was = self.doubt.doubting
        doubting = self.doubt.evaluate(d.launched, d.missed, self.canaries.verdicts.state)
        if doubting != was:
            level = logging.WARNING if doubting else logging.INFO
            log.log(level, "self-doubt " + ("on" if doubting else "off"), extra={
                "checker": self.checker_id, "self_doubt": int(doubting),
                "reasons": ",".join(self.doubt.reasons()) or "none"})
        m.self_doubt.set(int(doubting))
        for reason in ("canaries", "schedule"):
            m.self_doubt_reason.labels(reason).set(int(reason in self.doubt.reasons()))
        if d.missed > self._missed_seen:
            m.missed_slots.inc(d.missed - self._missed_seen)
            self._missed_seen = d.missed
        states = snapshot.report_states(self.registry.check_count, self.indices,
                                        d.verdicts.state, d.stale(self.clock.now()), doubting)
        self._log_changes(states)
        self.sequence += 1
        msg = snapshot.build(checker_id=self.checker_id, region=self.region,
                             registry_version=self.registry.version, sequence=self.sequence,
                             sent_unix_ms=self.clock.wall_ms(), states=states,
                             incarnation=self.incarnation)
        msg.details.extend(d.details.next_details(self.indices, d.outcomes, d.latencies,
                                                  d.reasons))
        m.snapshot_bytes.set(len(msg.states))
        fallback = None if self.previous is None else self.previous.fallback(msg, states)
        for stream, _ in self._streams.values():
            stream.offer(msg, fallback)
        return msg

    def _log_changes(self, states: np.ndarray) -> None:
        prev = self.last_states
        self.last_states = states
        if not log.isEnabledFor(logging.INFO) or prev.size != states.size:
            return
        changed = np.flatnonzero(prev != states)
        first = changed[:100]
        for i, check_id in zip(first.tolist(), self.registry.column("id", first), strict=True):
            log.info("state changed", extra={"check": check_id,
                                             "state": state_name(int(states[i])),
                                             "was": state_name(int(prev[i]))})
        if changed.size > 100:
            log.info("many states changed, first 100 logged",
                     extra={"checks_changed": changed.size})
