"""Prometheus metrics of the DNS front, read at scrape time.

The query path only bumps a Counter in a dict; this collector turns those
counts, the snapshot age and the current aggregator into metric families when
scraped, so metrics add nothing to the cost of a query.
"""

from __future__ import annotations

from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .consumer import HealthConsumer
from .keeper import AnswerKeeper
from .server import DnsFront

_RCODES = ("NOERROR", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "BADVERS")


class DnsCollector(Collector):
    def __init__(self, front: DnsFront, consumer: HealthConsumer, keeper: AnswerKeeper) -> None:
        self.front, self.consumer, self.keeper = front, consumer, keeper

    def collect(self) -> Iterator[Metric]:
        # A copy first: the query path adds keys from the event loop's thread
        # while this runs in the HTTP server's (dict(...) copies under the GIL).
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


def serve_metrics(host: str, port: int, front: DnsFront, consumer: HealthConsumer,
                  keeper: AnswerKeeper, *extra: Collector) -> tuple[WSGIServer, int]:
    """Serve /metrics on host:port from a background thread; returns (server, bound port).

    extra: more collectors for the same page (the TLS files' metrics).
    """
    registry = CollectorRegistry()
    registry.register(DnsCollector(front, consumer, keeper))
    for collector in extra:
        registry.register(collector)
    httpd, _thread = start_http_server(port, addr=host, registry=registry)
    return httpd, httpd.server_address[1]
