"""Prometheus metrics for one aggregator (``--metrics HOST:PORT``, alias ``--http``).

Counters the hot paths already keep (snapshots accepted and dropped, watch
skips, file writes) are read at scrape time by a collector, so ingest pays
nothing for being observed. Only the tick duration is a live histogram.

Names (all prefixed ``healthplane_aggregator_``):

    tick_duration_seconds            histogram  time to compute and publish one tick
    ticks_total                      counter    ticks computed
    ticks_missed_total               counter    schedule slots skipped because the loop was late
    ticks_failed_total               counter    ticks whose computation raised
    tick_sequence                    gauge      sequence of the latest tick
    warming                          gauge      1 while warming up after the start
    snapshots_accepted_total         counter    checker snapshots written to a slot
    snapshots_remapped_total         counter    accepted snapshots on the previous registry
    snapshots_dropped_total{reason}  counter    dropped snapshots by reason
    checkers                         gauge      checkers in the fleet
    fresh_checkers                   gauge      checkers whose snapshot voted in the latest tick
    checks{status}                   gauge      checks by final status in the latest tick
    state_changes_last_tick          gauge      checks whose status changed in the latest tick
    state_changes_total              counter    status changes over all ticks
    watchers                         gauge      open Health.Watch streams
    watch_skipped_total              counter    ticks a slow watcher never received
    snapshot_file_writes_total{result} counter  snapshot file writes: ok, failed, skipped
    config_reloads_total{result}     counter    reloads: adopted, unchanged, failed
    registry_info{version,previous}  gauge      1, labelled with the registry version served
                                                and the previous one still accepted ("" if none)
    registry_checks                  gauge      checks in the registry served
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from healthplane.aggregator.state import DROP_REASONS
from healthplane.proto import codec
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from healthplane.runtime.sideport import Handler, Readiness, SidePort

PREFIX = "healthplane_aggregator_"


@dataclass(frozen=True)
class AggregatorStats:
    """Everything the metrics report, read at one moment (see the names above).

    The aggregator builds one per scrape; the collector reads nothing else.
    """

    ticks: int                          # ticks computed by this process
    sequence: int                       # the latest tick's sequence (see warmstart)
    warming: bool                       # still warming up after the start
    ticks_missed: int
    ticks_failed: int
    snapshots_accepted: int
    snapshots_remapped: int
    snapshots_dropped: Mapping[str, int]
    checkers: int
    fresh_checkers: int                 # in the latest tick (0 before any)
    checks_by_state: tuple[int, ...]    # per 2-bit code, in the latest tick
    state_changes_last_tick: int
    state_changes: int
    watchers: int
    watch_skipped: int
    snapshot_file_writes: Mapping[str, int]  # ok, failed, skipped
    config_reloads: Mapping[str, int]        # adopted, unchanged, failed
    registry_version: str
    previous_version: str               # "" when none is accepted
    registry_checks: int


class _StatsCollector(Collector):
    def __init__(self, stats: Callable[[], AggregatorStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._stats()

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        def labelled(name: str, doc: str, label: str, values: Mapping[str, int],
                     keys: tuple[str, ...]) -> CounterMetricFamily:
            family = CounterMetricFamily(PREFIX + name, doc, labels=[label])
            for key in keys:
                family.add_metric([key], values.get(key, 0))
            return family

        yield counter("ticks", "Ticks computed.", s.ticks)
        yield counter("ticks_missed", "Tick slots skipped because the loop was late.",
                      s.ticks_missed)
        yield counter("ticks_failed", "Ticks whose computation raised.", s.ticks_failed)
        yield gauge("tick_sequence", "Sequence of the latest tick.", s.sequence)
        yield gauge("warming", "1 while warming up after the start (snapshots marked warming).",
                    int(s.warming))
        yield counter("snapshots_accepted", "Checker snapshots written to a slot.",
                      s.snapshots_accepted)
        yield counter("snapshots_remapped",
                      "Accepted snapshots on the previous registry version, remapped by id.",
                      s.snapshots_remapped)
        yield labelled("snapshots_dropped", "Checker snapshots dropped, by reason.", "reason",
                       s.snapshots_dropped, DROP_REASONS)
        yield gauge("checkers", "Checkers in the fleet.", s.checkers)
        yield gauge("fresh_checkers", "Checkers whose snapshot voted in the latest tick.",
                    s.fresh_checkers)
        checks = GaugeMetricFamily(PREFIX + "checks", "Checks by status in the latest tick.",
                                   labels=["status"])
        for code in codec.VALID_STATES:
            checks.add_metric([codec.STATE_NAMES[code]], s.checks_by_state[code])
        yield checks
        yield gauge("state_changes_last_tick", "Checks whose status changed in the latest tick.",
                    s.state_changes_last_tick)
        yield counter("state_changes", "Status changes over all ticks.", s.state_changes)
        yield gauge("watchers", "Open Health.Watch streams.", s.watchers)
        yield counter("watch_skipped", "Ticks a slow watcher never received.", s.watch_skipped)
        yield labelled("snapshot_file_writes", "Snapshot file writes by result.", "result",
                       s.snapshot_file_writes, ("ok", "failed", "skipped"))
        yield labelled("config_reloads", "Config reloads by result.", "result",
                       s.config_reloads, ("adopted", "unchanged", "failed"))
        info = GaugeMetricFamily(PREFIX + "registry_info",
                                 "The registry version served and the previous one accepted.",
                                 labels=["version", "previous"])
        info.add_metric([s.registry_version, s.previous_version], 1)
        yield info
        yield gauge("registry_checks", "Checks in the registry served.", s.registry_checks)


class AggregatorMetrics:
    """One aggregator's metrics in their own registry (several may share a process)."""

    def __init__(self, stats: Callable[[], AggregatorStats]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.tick_duration = Histogram(
            PREFIX + "tick_duration_seconds", "Time to compute and publish one tick.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry)
        self.registry.register(_StatsCollector(stats))
        self._side: SidePort | None = None
        self.port: int | None = None

    async def serve(self, host: str, port: int, ready: Readiness,
                    routes: Sequence[tuple[str, Handler]] = ()) -> int:
        """Serve the side port on host:port (0 picks a port); returns the port.

        /metrics from this registry, /healthz, /readyz from ready, and routes.
        """
        side = SidePort(self.registry, ready, routes)
        self.port = await side.start(host, port)
        self._side = side
        return self.port

    async def close(self) -> None:
        if self._side is not None:
            await self._side.stop()
            self._side = None
