"""Prometheus metrics of the DNS front, read at scrape time.

The query path only bumps a Counter in a dict; this collector turns those
counts, the snapshot age and the current aggregator into metric families when
scraped, so metrics add nothing to the cost of a query.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from healthplane.runtime.sideport import SidePort

from .consumer import HealthConsumer
from .keeper import AnswerKeeper
from .server import DnsFront

_RCODES = ("NOERROR", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "BADVERS")


class DnsCollector(Collector):
    def __init__(self, front: DnsFront, consumer: HealthConsumer, keeper: AnswerKeeper) -> None:
        self.front, self.consumer, self.keeper = front, consumer, keeper

    def collect(self) -> Iterator[Metric]:
        # A copy first: the query path may add keys while this runs.
        stats = dict(self.front.stats)
        queries = CounterMetricFamily("healthplane_dns_queries", "DNS responses sent, by rcode",
                                      labels=["rcode"])
        for rcode in sorted(set(_RCODES) | {k for k in stats if k.isupper()}):
            queries.add_metric([rcode], stats.get(rcode, 0))
        yield queries
        other = CounterMetricFamily("healthplane_dns_events",
                                    "Queries dropped, truncated responses, refused TCP "
                                    "connections and handler errors", labels=["event"])
        for event in ("dropped", "truncated", "tcp_refused", "tcp_evicted", "error",
                      "udp_error", "xfr", "xfr_refused", "xfr_not_ready", "tsig_refused"):
            other.add_metric([event], stats.get(event, 0))
        yield other
        age = self.consumer.age()
        yield GaugeMetricFamily("healthplane_dns_snapshot_age_seconds",
                                "Age of the freshest health snapshot (-1 before the first)",
                                value=-1.0 if age is None else age)
        current = GaugeMetricFamily("healthplane_dns_aggregator_current",
                                    "1 for the aggregator whose snapshots are served",
                                    labels=["aggregator"])
        if self.consumer.current is not None:
            current.add_metric([self.consumer.current], 1)
        yield current
        yield CounterMetricFamily("healthplane_dns_answers_rebuilt",
                                  "Times the answer table was rebuilt", value=self.keeper.rebuilds)
        yield CounterMetricFamily("healthplane_dns_aggregator_switches",
                                  "Times the consumer moved to another aggregator",
                                  value=self.consumer.switches)
        yield GaugeMetricFamily("healthplane_dns_failing_open",
                                "1 while the snapshot is too old and every value is served",
                                value=1 if self.keeper.failing_open else 0)
        reloads = CounterMetricFamily("healthplane_dns_zone_reloads",
                                      "zone.yaml reloads by result (failed: the running zone "
                                      "was kept)", labels=["result"])
        for result in ("adopted", "unchanged", "failed"):
            reloads.add_metric([result], self.keeper.reloads.get(result, 0))
        yield reloads
        yield GaugeMetricFamily("healthplane_dns_tcp_connections",
                                "Open DNS-over-TCP connections", value=self.front.tcp_active)


class DnsReadiness:
    """/readyz of the DNS front: ready once it holds a fresh health snapshot.

    Before that it answers as if every check were unknown (healthy), which
    is an answer but not the fleet's. Once ready it stays ready: a front whose
    aggregators went quiet fails open, the right answer then, and taking every
    front out of a Service at once would answer nothing at all.
    """

    def __init__(self, consumer: HealthConsumer, stale_after: float) -> None:
        self._consumer, self._stale_after = consumer, stale_after
        self._ready = False

    def __call__(self) -> tuple[bool, str]:
        age = self._consumer.age()
        if self._ready:
            return True, "" if age is None else f"snapshot {age:.1f} s old"
        if age is None:
            return False, "no health snapshot yet"
        if self._stale_after and age > self._stale_after:
            return False, f"snapshot {age:.1f} s old, over --stale-after"
        self._ready = True
        return True, f"snapshot {age:.1f} s old from {self._consumer.current}"


def side_port(front: DnsFront, consumer: HealthConsumer, keeper: AnswerKeeper,
              stale_after: float) -> SidePort:
    """The DNS front's HTTP side port (not started)."""
    registry = CollectorRegistry()
    registry.register(DnsCollector(front, consumer, keeper))
    return SidePort(registry, DnsReadiness(consumer, stale_after))
