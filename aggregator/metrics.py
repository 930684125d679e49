"""Prometheus metrics for one aggregator (``--metrics HOST:PORT``).

Counters the hot paths already keep (snapshots accepted and dropped, watch
skips, file writes) are read at scrape time by a collector, so ingest pays
nothing for being observed. Only the tick duration is a live histogram.

Names (all prefixed ``healthplane_aggregator_``):

    tick_duration_seconds            histogram  time to compute and publish one tick
    ticks_total                      counter    ticks computed
    ticks_missed_total               counter    schedule slots skipped because the loop was late
    ticks_failed_total               counter    ticks whose computation raised
    tick_sequence                    gauge      sequence of the latest tick
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

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from healthplane.aggregator.state import DROP_REASONS
from healthplane.proto import codec
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from healthplane.aggregator.server import Aggregator

PREFIX = "healthplane_aggregator_"
_STATUS_NAMES = (
    (codec.UNKNOWN, "unknown"), (codec.HEALTHY, "healthy"), (codec.UNHEALTHY, "unhealthy"))


class _StateCollector(Collector):
    def __init__(self, agg: Aggregator) -> None:
        self._agg = agg

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        agg = self._agg
        st = agg.state
        loop = agg.tick_loop

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        yield counter("ticks", "Ticks computed.", agg.ticks)
        yield counter("ticks_missed", "Tick slots skipped because the loop was late.",
                      loop.missed if loop else 0)
        yield counter("ticks_failed", "Ticks whose computation raised.",
                      loop.failed if loop else 0)
        yield gauge("tick_sequence", "Sequence of the latest tick.", st.sequence)
        yield counter("snapshots_accepted", "Checker snapshots written to a slot.",
                      st.counters.accepted)
        yield counter("snapshots_remapped",
                      "Accepted snapshots on the previous registry version, remapped by id.",
                      st.counters.remapped)
        dropped = CounterMetricFamily(PREFIX + "snapshots_dropped",
                                      "Checker snapshots dropped, by reason.", labels=["reason"])
        for reason in DROP_REASONS:
            dropped.add_metric([reason], st.counters.dropped.get(reason, 0))
        yield dropped
        yield gauge("checkers", "Checkers in the fleet.", len(st.checker_ids))
        pub = st.latest
        yield gauge("fresh_checkers", "Checkers whose snapshot voted in the latest tick.",
                    pub.fresh_checkers if pub else 0)
        checks = GaugeMetricFamily(PREFIX + "checks", "Checks by status in the latest tick.",
                                   labels=["status"])
        counts = pub.result.status_counts() if pub else np.zeros(4, dtype=np.int64)
        for value, name in _STATUS_NAMES:
            checks.add_metric([name], int(counts[value]))
        yield checks
        yield gauge("state_changes_last_tick", "Checks whose status changed in the latest tick.",
                    pub.changed if pub else 0)
        yield counter("state_changes", "Status changes over all ticks.", agg.changes_total)
        yield gauge("watchers", "Open Health.Watch streams.", agg.hub.watchers)
        yield counter("watch_skipped", "Ticks a slow watcher never received.", agg.hub.skipped)
        writes = CounterMetricFamily(PREFIX + "snapshot_file_writes",
                                     "Snapshot file writes by result.", labels=["result"])
        w = agg.snapshot_writer
        for result, value in (("ok", w.written if w else 0), ("failed", w.failed if w else 0),
                              ("skipped", w.skipped if w else 0)):
            writes.add_metric([result], value)
        yield writes
        reloads = CounterMetricFamily(PREFIX + "config_reloads", "Config reloads by result.",
                                      labels=["result"])
        for result in ("adopted", "unchanged", "failed"):
            reloads.add_metric([result], agg.reloads.get(result, 0))
        yield reloads
        info = GaugeMetricFamily(PREFIX + "registry_info",
                                 "The registry version served and the previous one accepted.",
                                 labels=["version", "previous"])
        previous = [v for v in st.versions if v != st.registry.version]
        info.add_metric([st.registry.version, previous[0] if previous else ""], 1)
        yield info
        yield gauge("registry_checks", "Checks in the registry served.", st.registry.check_count)


class AggregatorMetrics:
    """One aggregator's metrics in their own registry (several may share a process)."""

    def __init__(self, agg: Aggregator) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.tick_duration = Histogram(
            PREFIX + "tick_duration_seconds", "Time to compute and publish one tick.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry)
        self.registry.register(_StateCollector(agg))
        self._server: object | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP on host:port (0 picks a port); returns the port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        self.port = server.server_address[1]
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
            self._server = None
