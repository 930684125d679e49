"""The latest probe detail per (check, checker): what ``query --checkers`` shows as why.

Checkers send a fixed number of (check, outcome, reason, latency) entries
per report, rotating over the checks they own (see checker.detail); this
keeps the latest per (check, checker), with when it arrived. Ingest pays at
most ``MAX_PER_SNAPSHOT`` dictionary writes per snapshot; memory grows with
the (check, checker) pairs that checkers actually report, at most one entry
each. Entries naming a check outside the registry are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

MAX_PER_SNAPSHOT = 64   # far above what a checker sends (8); the rest is ignored
MAX_REASON = 64


class DetailEntry(Protocol):
    check_index: int
    latency_ms: float
    reason: str


class DetailStore:
    """reason, latency and arrival time per (row, check index)."""

    def __init__(self, n_rows: int, check_count: int) -> None:
        self.check_count = check_count
        self._rows: list[dict[int, tuple[str, float, float]]] = [{} for _ in range(n_rows)]
        self.dropped = 0

    def record(self, row: int, details: Sequence[DetailEntry], now: float) -> None:
        slot = self._rows[row]
        for d in details[:MAX_PER_SNAPSHOT]:
            index = d.check_index
            if not 0 <= index < self.check_count:
                self.dropped += 1
                continue
            reason = d.reason.rstrip()[:MAX_REASON]
            if reason:
                slot[index] = (reason, float(d.latency_ms), now)

    def get(self, row: int, index: int, now: float) -> tuple[str, float, int]:
        """(reason, latency_ms, age_ms); ("", 0.0, -1) when none arrived."""
        found = self._rows[row].get(index)
        if found is None:
            return "", 0.0, -1
        reason, latency, at = found
        return reason, latency, max(0, round((now - at) * 1000))

    def reasons_of(self, index: int, checker_ids: Sequence[str]) -> str:
        """"use1-a:refused,euw1-a:ok" for one check, for logs."""
        parts = []
        for row, cid in enumerate(checker_ids):
            found = self._rows[row].get(index)
            if found is not None:
                parts.append(f"{cid}:{found[0]}")
        return ",".join(parts)
