"""The TLS files' metrics, for any component's Prometheus registry.

    PREFIX + tls_reloads_total{result}       counter  re-reads: adopted, unchanged, failed
                                                      (a failed one keeps the running set)
    PREFIX + tls_certificate_expiry_seconds  gauge    notAfter of the certificate in use
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from healthplane.runtime.tls import TlsFiles


class TlsCollector(Collector):
    def __init__(self, tls: TlsFiles, prefix: str) -> None:
        self._tls = tls
        self._prefix = prefix

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        reloads = CounterMetricFamily(self._prefix + "tls_reloads",
                                      "Re-reads of the TLS certificate, key and CA, by result.",
                                      labels=["result"])
        for result in ("adopted", "unchanged", "failed"):
            reloads.add_metric([result], self._tls.reloads.get(result, 0))
        yield reloads
        yield GaugeMetricFamily(self._prefix + "tls_certificate_expiry_seconds",
                                "notAfter of the certificate in use, Unix time.",
                                value=self._tls.material.not_after.timestamp())
