"""One tick's outcome, as the aggregator's readers see it.

The tick engine makes one :class:`TickResult` per tick and the aggregator
publishes that same object to every reader (Get, Watch, Query, the snapshot
file, metrics): the registry it was computed on, its sequence, the wire
snapshot, and the per-check figures. It keeps the tick's per-check numbers in lane order (see
:mod:`healthplane.aggregator.votes`) and turns them into registry order only when asked:
``status``, ``healthy_votes``, ``reporting_votes`` and ``last_change_unix_ms``
are built on first access and cached; ``votes``, ``status_of`` and
``last_change_of`` read a few checks by index without reordering anything.
Statuses and vote counts belong to this result alone. Last-change times live
in a :class:`LastChangeRing` and stay readable for two ticks (the latest
result and the one before); an older result raises rather than give a newer
tick's times. An array already read stays valid.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np
from healthplane.aggregator.votes import lane_of, to_check_order
from healthplane.proto.config.model import Registry


class LastChangeRing:
    """Two per-lane int64 buffers of last-change times that alternate.

    A fresh 8 MB array per tick at a million checks costs page faults on top
    of the arithmetic; two reused buffers cost neither. Tick k writes buffer
    k % 2 from buffer (k - 1) % 2 as prev + (now - prev) * moved: the same
    three passes whether nothing or everything changed.
    """

    def __init__(self, lanes: int) -> None:
        self.bufs = (np.zeros(lanes, np.int64), np.zeros(lanes, np.int64))
        # Which write each buffer holds. A count of this ring's writes, not a
        # tick number: the tick's sequence lives in the aggregator's state.
        self.owner = [0, 0]
        self.generation = 0

    def advance(self, moved: np.ndarray | None, now_unix_ms: int,
                writer: Callable[[np.ndarray, np.ndarray], None] | None = None) -> int:
        """Record one tick (moved: lanes whose status changed; None: the first
        tick); returns the generation to read its times back with.

        writer(prev, out), when given, fills the new buffer from the previous
        one instead (the compiled kernel does it in its changes pass).
        """
        self.generation += 1
        k = self.generation
        out = self.bufs[k % 2]
        if writer is not None:
            writer(self.bufs[(k - 1) % 2], out)
        elif moved is None:
            out.fill(0)
        else:
            prev = self.bufs[(k - 1) % 2]
            np.subtract(np.int64(now_unix_ms), prev, out=out)
            np.multiply(out, moved, out=out)
            out += prev
        self.owner[k % 2] = k
        return k

    def get(self, generation: int) -> np.ndarray:
        if self.owner[generation % 2] != generation:
            raise RuntimeError("last-change times of this tick were reused two ticks later; "
                               "read them from a newer result")
        return self.bufs[generation % 2]

    def latest(self) -> np.ndarray:
        return self.bufs[self.generation % 2]


class TickResult:
    """One tick's outcome. Per-check arrays are built on first access.

    ``states`` is the final snapshot in the wire layout; ``changed`` counts
    checks whose status changed; ``fresh_checkers`` the checkers that voted;
    ``sequence`` is the number the tick is published under (0 for a tick
    nobody publishes, such as a trial).
    """

    def __init__(self, *, registry: Registry, sequence: int, states: bytes, changed: int,
                 fresh_checkers: int, generated_unix_ms: int, lanes_status: np.ndarray,
                 lanes_healthy: np.ndarray, lanes_reporting: np.ndarray,
                 last_change: LastChangeRing, last_change_generation: int,
                 lane_words: int, changed_lanes: np.ndarray | None = None) -> None:
        self.registry = registry
        self.sequence = sequence
        self.warming = False   # set by the aggregator while it warms up (warmstart)
        self.states = states
        self.changed = changed
        self.fresh_checkers = fresh_checkers
        self.generated_unix_ms = generated_unix_ms
        self.check_count = registry.check_count
        self._status = lanes_status
        self._healthy = lanes_healthy
        self._reporting = lanes_reporting
        self._ring = last_change
        self._ring_generation = last_change_generation
        self._lane_words = lane_words
        self._changed_lanes = changed_lanes

    def changed_indices(self) -> np.ndarray:
        """Registry indices of the first checks whose status changed (a bounded few)."""
        lanes = self._changed_lanes
        if lanes is None:
            return np.zeros(0, dtype=np.int64)
        nw = self._lane_words
        # The inverse of votes.lane_of.
        j, t = lanes % 8, lanes // 8
        w, qq = t % nw, t // nw
        return np.sort(32 * w + 4 * j + 2 * (qq & 1) + (qq >> 1))

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
        """Per check, when its status last changed (0: never). Read within two ticks."""
        return to_check_order(self._ring.get(self._ring_generation), self.check_count)

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
        return self._ring.get(self._ring_generation)[self._lanes(indices)]

    def status_counts(self) -> np.ndarray:
        """Checks per status (index 0..3), without reordering anything."""
        counts = np.bincount(self._status, minlength=4)
        counts[0] -= self._status.size - self.check_count  # padding lanes hold 0
        return counts
