"""Prometheus metrics of ``healthplane pdns-backend``, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from healthplane.runtime.sideport import SidePort

from .consumer import HealthConsumer
from .keeper import AnswerKeeper
from .metrics import DnsReadiness
from .pdns_backend import RemoteBackend

_EVENTS = ("malformed", "oversized", "error")


class PdnsCollector(Collector):
    def __init__(self, backend: RemoteBackend, consumer: HealthConsumer,
                 keeper: AnswerKeeper) -> None:
        self.backend, self.consumer, self.keeper = backend, consumer, keeper

    def collect(self) -> Iterator[Metric]:
        stats = dict(self.backend.stats)     # a copy: requests may add keys meanwhile
        requests = CounterMetricFamily("healthplane_pdns_requests",
                                       "Remote backend requests answered, by method",
                                       labels=["method"])
        for method in sorted(k for k in stats if k not in _EVENTS):
            requests.add_metric([method], stats[method])
        yield requests
        events = CounterMetricFamily("healthplane_pdns_events",
                                     "Requests answered false as malformed, connections closed "
                                     "for an oversized request, handler errors",
                                     labels=["event"])
        for event in _EVENTS:
            events.add_metric([event], stats.get(event, 0))
        yield events
        age = self.consumer.age()
        yield GaugeMetricFamily("healthplane_pdns_snapshot_age_seconds",
                                "Age of the freshest health snapshot (-1 before the first)",
                                value=-1.0 if age is None else age)
        yield GaugeMetricFamily("healthplane_pdns_failing_open",
                                "1 while the snapshot is too old and every value is served",
                                value=1 if self.keeper.failing_open else 0)
        reloads = CounterMetricFamily("healthplane_pdns_zone_reloads",
                                      "zone.yaml reloads by result", labels=["result"])
        for result in ("adopted", "unchanged", "failed"):
            reloads.add_metric([result], self.keeper.reloads.get(result, 0))
        yield reloads


def side_port(backend: RemoteBackend, consumer: HealthConsumer, keeper: AnswerKeeper,
              stale_after: float) -> SidePort:
    """The backend's HTTP side port (not started): ready as the DNS front is."""
    registry = CollectorRegistry()
    registry.register(PdnsCollector(backend, consumer, keeper))
    return SidePort(registry, DnsReadiness(consumer, stale_after))
