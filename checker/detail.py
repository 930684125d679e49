"""Why a check is failing, at constant cost: a few probe details per report.

The dispatcher keeps each row's latest outcome, reason ("ok", "timeout",
"refused", "status 503", ...) and latency. Each report carries the latest of
a fixed number of them, ``DETAILS_PER_REPORT``, rotating over the owned
checks, so every owned check's detail reaches the aggregators once every
``owned / DETAILS_PER_REPORT`` reports. Every entry has every field set and
its reason padded to ``REASON_BYTES``: a report has the same size on a bad
day as on a quiet one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from healthplane.checker.probes.base import Outcome
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

DETAILS_PER_REPORT = 8
REASON_BYTES = 32   # "tls error: ..." is cut here; the stable prefix is what matters


def pad_reason(reason: str) -> str:
    """The reason as sent: cut or space-padded to exactly REASON_BYTES of UTF-8."""
    raw = reason.encode("utf-8", "replace")[:REASON_BYTES].decode("utf-8", "ignore")
    return raw + " " * (REASON_BYTES - len(raw.encode("utf-8")))


class DetailCursor:
    """Where the rotation over a dispatcher's rows stands."""

    def __init__(self) -> None:
        self._cursor = 0

    def next_details(self, check_index: np.ndarray, outcomes: np.ndarray,
                     latencies: np.ndarray, reasons: Sequence[str]) -> list[pb.ProbeDetail]:
        """The next DETAILS_PER_REPORT rows' details.

        check_index: registry index per row; outcomes (-1: no result yet),
        latencies (seconds) and reasons: the dispatcher's per-row latest.
        """
        n = check_index.size
        if n == 0:
            return []
        count = min(DETAILS_PER_REPORT, n)
        rows = (self._cursor + np.arange(count)) % n
        self._cursor = int((self._cursor + count) % n)
        out = []
        for r in rows.tolist():
            code = int(outcomes[r])
            latency = float(latencies[r])
            out.append(pb.ProbeDetail(
                check_index=int(check_index[r]),
                outcome=(pb.STATUS_UNKNOWN if code < 0 else
                         pb.STATUS_HEALTHY if code == Outcome.OK else pb.STATUS_UNHEALTHY),
                latency_ms=0.0 if latency != latency else latency * 1000.0,
                reason=pad_reason(reasons[r] if code >= 0 else "")))
        return out
