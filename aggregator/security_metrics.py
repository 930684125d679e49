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

from collections.abc import Callable, Iterator, Sequence

from healthplane.aggregator.limits import Admission
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from healthplane.runtime.tls import TlsFiles
from healthplane.runtime.tls_metrics import TlsCollector

PREFIX = "healthplane_aggregator_"


class SecurityCollector(Collector):
    """Reads the admissions, the connection cap and the TLS files at scrape time."""

    def __init__(self, admissions: Sequence[Admission], connection_limit: Callable[[], int],
                 tls: TlsFiles | None) -> None:
        self._admissions = admissions
        self._connection_limit = connection_limit
        self._tls = tls

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        refused = CounterMetricFamily(PREFIX + "rpcs_refused",
                                      "Streams refused at a cap, by RPC and limit.",
                                      labels=["rpc", "limit"])
        opened = GaugeMetricFamily(PREFIX + "streams_open", "Streams open now, by RPC.",
                                   labels=["rpc"])
        for adm in self._admissions:
            for limit in ("total", "per_client"):
                refused.add_metric([adm.kind, limit], adm.refused.get(limit, 0))
            opened.add_metric([adm.kind], adm.open)
        yield refused
        yield opened
        yield GaugeMetricFamily(PREFIX + "connection_limit", "Connections admitted at once.",
                                value=self._connection_limit())
        if self._tls is not None:
            yield from TlsCollector(self._tls, PREFIX).collect()
