"""Prometheus metrics of one checker process.

Served with ``--metrics HOST:PORT`` at ``/metrics`` (see
:mod:`healthplane.runtime.sideport`; ``process_*`` and
``healthplane_build_info`` too). Every name:

``healthplane_checker_probes_total{kind, result}``
    Probes finished, by check type (http, https, tcp, grpc, dns) and outcome
    (ok, failed, timeout, refused, reset, unreachable, tls_error,
    resolve_failed, forbidden, error; see ``checker.probes.base.Outcome``).
    Constant work means the total rate stays flat whatever the targets do.
``healthplane_checker_certificates_expiring{within_days}``
    Checks whose target's TLS certificate (https, grpc with tls), as seen
    by their latest probe, expires within 14 and 30 days (expired ones
    included).
``healthplane_checker_dns_answers_dropped_total``
    DNS answers dropped by dns probes as forged or malformed (wrong id or
    question, not a response, unparseable).
``healthplane_checker_schedule_lateness_seconds`` (histogram)
    How long after its slot each probe started.
``healthplane_checker_missed_slots_total``
    Slots skipped because the process was too late to start them on time
    (a stall, or the concurrency bound reached); skipped, never run late.
``healthplane_checker_probes_in_flight``
    Probes started and not finished.
``healthplane_checker_concurrency_limit``
    The bound on probes in flight (rate x timeout, with headroom).
``healthplane_checker_checks_owned``
    Checks this checker probes under the current registry and fleet.
``healthplane_checker_canary_probes_total{result}``
    Canary probes finished, by result (ok, failed).
``healthplane_checker_self_doubt``
    1 while the checker doubts itself and reports every check as unknown.
``healthplane_checker_self_doubt_reason{reason}``
    1 for each reason currently in force: canaries, schedule.
``healthplane_checker_snapshots_sent_total{aggregator}``
    Snapshots written to the Report stream of each aggregator.
``healthplane_checker_snapshots_replaced_total{aggregator}``
    Snapshots replaced by a newer one before they could be sent (a slow or
    unreachable aggregator); nothing ever queues behind them.
``healthplane_checker_stream_reconnects_total{aggregator}``
    Report streams (re)opened after a failure.
``healthplane_checker_stream_connected{aggregator}``
    1 while the Report stream to the aggregator is open and writing.
``healthplane_checker_snapshot_bytes``
    Size of the states field of each snapshot (the same every time).
``healthplane_checker_config_reloads_total{result}``
    Reload attempts: adopted, unchanged, failed (the old config kept running).

Per-probe figures are kept in numpy counters and turned into metric
families only when scraped, so the probe hot path never touches a
prometheus-client lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import numpy as np
from healthplane.checker.probes import KINDS, dns
from healthplane.checker.probes.base import OUTCOME_LABELS
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

CERT_WINDOWS_DAYS: tuple[int, ...] = (14, 30)


class _Stream(Protocol):
    connected: bool


class _Streaming(Protocol):
    @property
    def streams(self) -> Mapping[str, _Stream]: ...

LATENESS_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_P = "healthplane_checker_"


class _ArrayCollector(Collector):
    """Exposes the numpy-kept probe counters and lateness histogram."""

    def __init__(self, owner: CheckerMetrics) -> None:
        self._m = owner

    def collect(self) -> Iterator[Metric]:
        m = self._m
        probes = CounterMetricFamily(_P + "probes", "Probes finished, by check type and result.",
                                     labels=["kind", "result"])
        for k, kind in enumerate(KINDS):
            for r, result in enumerate(OUTCOME_LABELS):
                probes.add_metric([kind, result], float(m.probe_counts[k, r]))
        yield probes
        yield CounterMetricFamily(_P + "dns_answers_dropped",
                                  "DNS answers dropped as forged or malformed.",
                                  value=float(dns.DROPPED[0]))
        cumulative = np.cumsum(m.lateness_counts)
        buckets = [(repr(b), float(cumulative[i])) for i, b in enumerate(LATENESS_BUCKETS)]
        buckets.append(("+Inf", float(cumulative[-1])))
        yield HistogramMetricFamily(
            _P + "schedule_lateness_seconds", "Seconds between a probe's slot and its start.",
            buckets=buckets, sum_value=float(m.lateness_sum))


class CheckerMetrics:
    """Every metric of one checker, in its own registry (tests make many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.probe_counts = np.zeros((len(KINDS), len(OUTCOME_LABELS)), dtype=np.int64)
        self.lateness_counts = np.zeros(len(LATENESS_BUCKETS) + 1, dtype=np.int64)
        self.lateness_sum = 0.0
        self._bounds = np.asarray(LATENESS_BUCKETS)
        r.register(_ArrayCollector(self))
        self.missed_slots = Counter(_P + "missed_slots", "Slots skipped, too late to start.",
                                    registry=r)
        self.in_flight = Gauge(_P + "probes_in_flight", "Probes started and not finished.",
                               registry=r)
        self.concurrency_limit = Gauge(_P + "concurrency_limit", "Bound on probes in flight.",
                                       registry=r)
        self.checks_owned = Gauge(_P + "checks_owned", "Checks this checker probes.", registry=r)
        self.canary_probes = Counter(_P + "canary_probes", "Canary probes finished, by result.",
                                     ["result"], registry=r)
        self.self_doubt = Gauge(_P + "self_doubt",
                                "1 while the checker reports every check as unknown.", registry=r)
        self.self_doubt_reason = Gauge(_P + "self_doubt_reason", "1 per reason in force.",
                                       ["reason"], registry=r)
        self.snapshots_sent = Counter(_P + "snapshots_sent", "Snapshots sent, per aggregator.",
                                      ["aggregator"], registry=r)
        self.snapshots_replaced = Counter(
            _P + "snapshots_replaced", "Snapshots replaced by a newer one before being sent.",
            ["aggregator"], registry=r)
        self.stream_reconnects = Counter(_P + "stream_reconnects", "Report streams reopened.",
                                         ["aggregator"], registry=r)
        self.stream_connected = Gauge(_P + "stream_connected", "1 while the stream is open.",
                                      ["aggregator"], registry=r)
        self.snapshot_bytes = Gauge(_P + "snapshot_bytes", "Bytes of states per snapshot.",
                                    registry=r)
        self.config_reloads = Counter(_P + "config_reloads", "Config reload attempts, by result.",
                                      ["result"], registry=r)
        self.certificates_expiring = Gauge(
            _P + "certificates_expiring",
            "Checks whose TLS certificate expires within this many days.",
            ["within_days"], registry=r)
        for reason in ("canaries", "schedule"):
            self.self_doubt_reason.labels(reason).set(0)
        for result in ("adopted", "unchanged", "failed"):
            self.config_reloads.labels(result)

    def count_probes(self, kinds: np.ndarray, codes: np.ndarray) -> None:
        """Add one batch of finished probes (kind code and result code each)."""
        flat = kinds.astype(np.int64) * len(OUTCOME_LABELS) + codes
        self.probe_counts += np.bincount(flat, minlength=self.probe_counts.size).reshape(
            self.probe_counts.shape)

    def observe_lateness(self, late: np.ndarray) -> None:
        """Add one batch of slot lateness values (seconds)."""
        if late.size == 0:
            return
        buckets = np.searchsorted(self._bounds, late, side="left")
        self.lateness_counts += np.bincount(buckets, minlength=self.lateness_counts.size)
        self.lateness_sum += float(late.sum())

    def probes_total(self) -> int:
        return int(self.probe_counts.sum())


def readiness(checker: _Streaming) -> tuple[bool, str]:
    """/readyz of a checker: ready while a Report stream to an aggregator is open.

    A checker that reaches no aggregator probes in vain; a rollout that
    waits for readiness stops there instead of replacing every checker.
    """
    streams = checker.streams
    up = sorted(a for a, s in streams.items() if s.connected)
    if up:
        return True, f"streaming to {', '.join(up)}"
    return False, f"no Report stream open (aggregators: {', '.join(sorted(streams)) or 'none'})"
