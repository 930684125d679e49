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
    """State, run lengths and threshold per registry index."""

    def __init__(self, thresholds: np.ndarray) -> None:
        n = thresholds.size
        self.threshold = np.asarray(thresholds, dtype=np.uint8)
        self.state = np.zeros(n, dtype=np.uint8)
        self.ok_run = np.zeros(n, dtype=np.uint8)
        self.fail_run = np.zeros(n, dtype=np.uint8)

    def apply(self, idx: np.ndarray, ok: np.ndarray) -> None:
        """Fold one batch of results (registry index, success) into the state.

        Results for the same index must be applied in order; a batch holding
        one index twice is split so each result counts once, in order.
        """
        idx = np.asarray(idx, dtype=np.int64)
        ok = np.asarray(ok, dtype=bool)
        if idx.size == 0:
            return
        uniq, first = np.unique(idx, return_index=True)
        if uniq.size != idx.size:
            # Rare (a result batch longer than a check's interval): keep order.
            dup = np.ones(idx.size, dtype=bool)
            dup[first] = False
            self._apply_unique(idx[first], ok[first])
            self.apply(idx[dup], ok[dup])
            return
        self._apply_unique(idx, ok)

    def _apply_unique(self, idx: np.ndarray, ok: np.ndarray) -> None:
        ok_run = np.where(ok, np.minimum(self.ok_run[idx].astype(np.int32) + 1, _RUN_CAP), 0)
        fail_run = np.where(ok, 0, np.minimum(self.fail_run[idx].astype(np.int32) + 1, _RUN_CAP))
        self.ok_run[idx] = ok_run
        self.fail_run[idx] = fail_run
        state = self.state[idx]
        thr = self.threshold[idx]
        to_healthy = ok & ((state == UNKNOWN) | (ok_run >= thr))
        to_unhealthy = ~ok & (fail_run >= thr)
        new = np.where(to_healthy, HEALTHY, np.where(to_unhealthy, UNHEALTHY, state))
        self.state[idx] = new.astype(np.uint8)

    def carry_from(self, old: Verdicts, old_idx: np.ndarray, new_idx: np.ndarray) -> None:
        """Copy state and runs of checks that kept their id across a reload."""
        self.state[new_idx] = old.state[old_idx]
        self.ok_run[new_idx] = old.ok_run[old_idx]
        self.fail_run[new_idx] = old.fail_run[old_idx]
