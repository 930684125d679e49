"""Per-check verdicts from consecutive probe results, as arrays.

A check is unknown (00) until its first result. One success makes it
healthy; ``failure_threshold`` consecutive failures make it unhealthy (so a
check that has only ever failed stays unknown until then). After that the
state flips only on ``failure_threshold`` consecutive results the other way.
Every update is a handful of numpy operations on the rows that got results,
whatever their number.
"""

from __future__ import annotations

import numpy as np
from healthplane.proto.codec import HEALTHY, UNHEALTHY, UNKNOWN

_RUN_CAP = 255  # runs only matter up to the threshold (<= 10); cap avoids overflow


class Verdicts:
    """State, run lengths and threshold per row (a check's position in its dispatcher)."""

    def __init__(self, thresholds: np.ndarray, successes: np.ndarray | None = None) -> None:
        """thresholds: consecutive failures to turn unhealthy (fall); successes:
        consecutive successes to turn healthy again (rise), default the same."""
        n = thresholds.size
        self.threshold = np.asarray(thresholds, dtype=np.uint8)
        self.rise = (self.threshold if successes is None
                     else np.asarray(successes, dtype=np.uint8))
        self.state = np.zeros(n, dtype=np.uint8)
        self.ok_run = np.zeros(n, dtype=np.uint8)
        self.fail_run = np.zeros(n, dtype=np.uint8)

    def apply(self, rows: np.ndarray, ok: np.ndarray) -> None:
        """Fold one batch of results (row, success) into the state.

        Results for the same row must be applied in order; a batch holding
        one row twice is split so each result counts once, in order.
        """
        rows = np.asarray(rows, dtype=np.int64)
        ok = np.asarray(ok, dtype=bool)
        if rows.size == 0:
            return
        uniq, first = np.unique(rows, return_index=True)
        if uniq.size != rows.size:
            # Rare (a result batch longer than a check's interval): keep order.
            dup = np.ones(rows.size, dtype=bool)
            dup[first] = False
            self._apply_unique(rows[first], ok[first])
            self.apply(rows[dup], ok[dup])
            return
        self._apply_unique(rows, ok)

    def _apply_unique(self, rows: np.ndarray, ok: np.ndarray) -> None:
        ok_run = np.where(ok, np.minimum(self.ok_run[rows].astype(np.int32) + 1, _RUN_CAP), 0)
        fail_run = np.where(ok, 0, np.minimum(self.fail_run[rows].astype(np.int32) + 1,
                                              _RUN_CAP))
        self.ok_run[rows] = ok_run
        self.fail_run[rows] = fail_run
        state = self.state[rows]
        to_healthy = ok & ((state == UNKNOWN) | (ok_run >= self.rise[rows]))
        to_unhealthy = ~ok & (fail_run >= self.threshold[rows])
        new = np.where(to_healthy, HEALTHY, np.where(to_unhealthy, UNHEALTHY, state))
        self.state[rows] = new.astype(np.uint8)

    def reset(self, rows: np.ndarray) -> None:
        """Forget the verdicts of rows: unknown again, to rebuild from new results."""
        self.state[rows] = UNKNOWN
        self.ok_run[rows] = 0
        self.fail_run[rows] = 0

    def carry_from(self, old: Verdicts, old_rows: np.ndarray, new_rows: np.ndarray) -> None:
        """Copy state and runs of checks that kept their id across a reload."""
        self.state[new_rows] = old.state[old_rows]
        self.ok_run[new_rows] = old.ok_run[old_rows]
        self.fail_run[new_rows] = old.fail_run[old_rows]
