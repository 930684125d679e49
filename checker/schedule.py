"""The fixed probe schedule: when each owned check is due, as arrays.

Row ``r`` (the check's position in its dispatcher, not its registry index)
is due at ``phase[r] + k * interval[r]`` for every integer k. The phase is a
stable hash of (check id, checker id) spread uniformly over the interval, so
the probe starts of a checker are flat over time and two checkers never probe
a target in lock-step. Due times come from k, never from "now + interval",
so the schedule cannot drift however late the process runs.

Instead of one timer or task per check, time is cut into windows of at most
the shortest interval. :meth:`Schedule.slots_in` returns every slot of a
window, sorted, in one vectorised pass over the arrays (a few milliseconds
for 100,000 checks, once per window). Because a window is never longer than
any interval and windows tile time half-open (``[t0, t1)``), every slot lands
in exactly one window: each check is due exactly once per interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from healthplane.checker.ownership import stable_hash64

_TWO64 = float(2**64)


def phase_fraction(check_id: str, checker_id: str) -> float:
    """Where in its interval a check's slots fall for this checker, in [0, 1)."""
    return stable_hash64("phase", check_id, checker_id) / _TWO64


def concurrency_limit(intervals: np.ndarray, timeouts: np.ndarray) -> int:
    """rate x timeout, plus headroom for slots that happen to bunch up."""
    if intervals.size == 0:
        return 1
    mean_in_flight = float((timeouts / intervals).sum())
    # Phases are hashes, so starts are only statistically even; the margin
    # (a quarter, plus a few standard deviations of a Poisson count) keeps
    # the bound from skipping slots of a healthy, on-time checker.
    return max(1, math.ceil(1.25 * mean_in_flight + 4 * math.sqrt(mean_in_flight) + 4))


class Schedule:
    """Slots of a set of checks, one row per check, in the dispatcher's order.

    intervals: seconds between slots, per row
    phases:    seconds, in [0, interval): slot times are phase + k * interval
    """

    def __init__(self, intervals: np.ndarray, phases: np.ndarray) -> None:
        self.intervals = np.asarray(intervals, dtype=np.float64)
        self.phases = np.asarray(phases, dtype=np.float64)
        if self.intervals.shape != self.phases.shape or self.intervals.ndim != 1:
            raise ValueError("intervals and phases must be flat and of the same length")
        if self.intervals.size and float(self.intervals.min()) <= 0:
            raise ValueError("intervals must be > 0")

    @classmethod
    def build(cls, ids: Sequence[str], intervals: Sequence[float] | np.ndarray,
              checker_id: str) -> Schedule:
        """A schedule whose phases hash (check id, checker id); ids[r] is row r's check."""
        iv = np.asarray(intervals, dtype=np.float64)
        frac = np.fromiter((phase_fraction(c, checker_id) for c in ids),
                           dtype=np.float64, count=len(ids))
        return cls(iv, frac * iv)

    def __len__(self) -> int:
        return int(self.intervals.size)

    @property
    def max_window(self) -> float:
        """The longest window slots_in may be asked for (the shortest interval)."""
        return float(self.intervals.min()) if self.intervals.size else 1.0

    @property
    def rate(self) -> float:
        """Slots per second over all rows."""
        return float((1.0 / self.intervals).sum()) if self.intervals.size else 0.0

    def slots_in(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Every slot with t0 <= time < t1, as (times, rows) sorted by time.

        t1 - t0 must not exceed max_window, so no row has two slots in it.
        """
        if t1 - t0 > self.max_window + 1e-9:
            raise ValueError(f"window {t1 - t0}s is longer than the shortest interval")
        if not self.intervals.size:
            return np.empty(0), np.empty(0, dtype=np.int64)
        k = self._first_k(t0)
        due = self.phases + k * self.intervals
        pos = np.flatnonzero(due < t1)
        times = due[pos]
        order = np.argsort(times, kind="stable")
        return times[order], pos[order]

    def count_slots(self, t0: float, t1: float) -> int:
        """How many slots fall in [t0, t1), for any span (counting skipped time)."""
        if not self.intervals.size or t1 <= t0:
            return 0
        return int((self._first_k(t1) - self._first_k(t0)).sum())

    def _first_k(self, t: float) -> np.ndarray:
        """Per row, the smallest k with phase + k * interval >= t.

        Computed exactly the way due times are, so a slot on a window
        boundary belongs to one window only, whatever the rounding.
        """
        k = np.ceil((t - self.phases) / self.intervals)
        # The division can round either way by one ulp; settle it by
        # comparing the very expression due times are computed with.
        k[self.phases + k * self.intervals < t] += 1
        k[self.phases + (k - 1) * self.intervals >= t] -= 1
        return k
