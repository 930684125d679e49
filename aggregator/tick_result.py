"""One tick's outcome, as the aggregator's readers see it.

A :class:`TickResult` keeps the tick's per-check numbers in lane order (see
:mod:`aggregator.votes`) and turns them into registry order only when asked:
``status``, ``healthy_votes``, ``reporting_votes`` and ``last_change_unix_ms``
are built on first access and cached; ``votes``, ``status_of`` and
``last_change_of`` read a few checks by index without reordering anything.
The arrays belong to this result alone: later ticks never change them.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from aggregator.votes import lane_of, to_check_order


class TickResult:
    """One tick's outcome. Per-check arrays are built on first access."""

    def __init__(self, *, states: bytes, changed: int, generated_unix_ms: int,
                 check_count: int, lanes_status: np.ndarray, lanes_healthy: np.ndarray,
                 lanes_reporting: np.ndarray, lanes_last_change: np.ndarray,
                 lane_words: int) -> None:
        self.states = states
        self.changed = changed
        self.generated_unix_ms = generated_unix_ms
        self.check_count = check_count
        self._status = lanes_status
        self._healthy = lanes_healthy
        self._reporting = lanes_reporting
        self._last_change = lanes_last_change
        self._lane_words = lane_words

    @cached_property
    def status(self) -> np.ndarray:
        """Final status per check in registry order (uint8: 1 healthy, 2 unhealthy)."""
        return to_check_order(self._status, self.check_count)

    @cached_property
    def healthy_votes(self) -> np.ndarray:
        return to_check_order(self._healthy, self.check_count)

    @cached_property
    def reporting_votes(self) -> np.ndarray:
        return to_check_order(self._reporting, self.check_count)

    @cached_property
    def last_change_unix_ms(self) -> np.ndarray:
        return to_check_order(self._last_change, self.check_count)

    def _lanes(self, indices: np.ndarray | list[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.check_count):
            raise IndexError("check index out of range")
        return lane_of(idx, self._lane_words)

    def votes(self, indices: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(healthy, reporting) vote counts for the given check indices."""
        lanes = self._lanes(indices)
        return self._healthy[lanes], self._reporting[lanes]

    def status_of(self, indices: np.ndarray | list[int]) -> np.ndarray:
        return self._status[self._lanes(indices)]

    def last_change_of(self, indices: np.ndarray | list[int]) -> np.ndarray:
        return self._last_change[self._lanes(indices)]

    def status_counts(self) -> np.ndarray:
        """Checks per status (index 0..3), without reordering anything."""
        counts = np.bincount(self._status, minlength=4)
        counts[0] -= self._status.size - self.check_count  # padding lanes hold 0
        return counts
