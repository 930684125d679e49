"""Prometheus metrics for admission, limits and TLS (prefix ``healthplane_aggregator_``).

    rpcs_refused_total{rpc,limit}      counter  streams refused at a cap (RESOURCE_EXHAUSTED);
                                                rpc: Report | Watch, limit: total | per_client
    streams_open{rpc}                  gauge    Report and Watch streams open now
    connection_limit                   gauge    connections admitted at once (after fitting
                                                the open-files limit)
    tls_reloads_total{result}          counter  certificate/key/CA re-reads: adopted,
                                                unchanged, failed (the old set kept)
    tls_certificate_expiry_seconds     gauge    notAfter of the certificate in use (Unix time)

Drops of snapshots for a foreign identity or an old sequence are in
``snapshots_dropped_total{reason="identity_mismatch"|"stale_sequence"}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from healthplane.runtime.tls_metrics import TlsCollector

if TYPE_CHECKING:
    from healthplane.aggregator.server import Aggregator

PREFIX = "healthplane_aggregator_"


class SecurityCollector(Collector):
    def __init__(self, agg: Aggregator) -> None:
        self._agg = agg

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        agg = self._agg
        refused = CounterMetricFamily(PREFIX + "rpcs_refused",
                                      "Streams refused at a cap, by RPC and limit.",
                                      labels=["rpc", "limit"])
        opened = GaugeMetricFamily(PREFIX + "streams_open", "Streams open now, by RPC.",
                                   labels=["rpc"])
        for adm in (agg.report_admission, agg.watch_admission):
            for limit in ("total", "per_client"):
                refused.add_metric([adm.kind, limit], adm.refused.get(limit, 0))
            opened.add_metric([adm.kind], adm.open)
        yield refused
        yield opened
        yield GaugeMetricFamily(PREFIX + "connection_limit", "Connections admitted at once.",
                                value=agg.limits.max_connections)
        if agg.tls is not None:
            yield from TlsCollector(agg.tls, PREFIX).collect()
