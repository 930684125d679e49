"""The tick's whole-array passes, in numpy: the fallback of the compiled kernel.

A tick (see :mod:`healthplane.aggregator.tick`) is three passes over its
lanes around the calculated checks: ``votes`` (count the fresh slots, apply
the vote rule, inversion, disabling, the quorum and unknown_as), ``changes``
(which lanes changed, and their last-change times) and ``encode`` (the wire
snapshot). :class:`NumpyPasses` makes them from whole-array numpy calls;
:class:`healthplane.aggregator.tick_kernel.CompiledPasses` makes each one a
single compiled loop. Both take and return the same arrays, so the engine
and every test run the same way on either.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from healthplane.aggregator.tick_layout import Layout, VoteRule
from healthplane.aggregator.tick_result import LastChangeRing
from healthplane.aggregator.votes import SlotMatrix

# Changed checks a result names (changed_indices); the count is always exact.
CHANGES_KEPT = 64

Fill = np.ndarray | np.uint8


class TickPasses(Protocol):
    name: str
    numpy_counter: bool   # whether the layout must carry the numpy count's scratch

    def votes(self, lay: Layout, slots: SlotMatrix, fresh: np.ndarray, rule: VoteRule,
              fill: Fill) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(status, healthy, reporting) per lane, each a new array the result keeps."""
        ...

    def changes(self, status: np.ndarray, prev: np.ndarray, established: np.ndarray | None,
                ring: LastChangeRing, now_unix_ms: int) -> tuple[int, np.ndarray | None, int]:
        """(changed, the first CHANGES_KEPT changed lanes or None, ring generation)."""
        ...

    def encode(self, status: np.ndarray, lane_words: int, nbytes: int) -> bytes:
        ...


class NumpyPasses:
    """Every pass as a fixed sequence of whole-array numpy calls."""

    name = "python"
    numpy_counter = True

    def votes(self, lay: Layout, slots: SlotMatrix, fresh: np.ndarray, rule: VoteRule,
              fill: Fill) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert lay.counter is not None  # built whenever this path runs
        healthy, unhealthy = lay.counter.count(slots, fresh)
        reporting = np.add(healthy, unhealthy)
        vote_ok = rule.healthy(healthy, unhealthy, slots.n_rows)

        # 1 healthy / 2 unhealthy, then inversion and disabling.
        status = np.subtract(np.uint8(2), vote_ok.view(np.uint8))
        status &= lay.keep
        status ^= lay.flip

        # Unknown lanes take unknown_as. A branch-free select (0xFF where
        # unknown): a masked copy costs ten times more on a random mask than
        # on a uniform one, and a failure storm must not make the tick slower.
        # Below the quorum (min_votes reporting votes from min_regions
        # regions; by default one vote from anywhere) is no data either.
        below = np.less(reporting, lay.min_votes)
        if lay.region_rows is not None:
            regions = np.zeros(reporting.size, dtype=np.uint16)
            for rows in lay.region_rows:
                rh, ru = lay.counter.count(slots, fresh & rows)
                regions += np.bitwise_or(rh, ru) != 0
            below |= regions < lay.min_regions
        below &= lay.novote == 0
        unknown = np.negative(below.view(np.uint8))
        pick = np.bitwise_xor(status, fill)
        pick &= unknown
        status ^= pick
        return status, healthy, reporting

    def changes(self, status: np.ndarray, prev: np.ndarray, established: np.ndarray | None,
                ring: LastChangeRing, now_unix_ms: int) -> tuple[int, np.ndarray | None, int]:
        moved = status != prev
        if established is not None:
            # First tick after inherit(): a check new to the registry gets
            # its first status; that is no change.
            moved &= established
        changed = int(np.count_nonzero(moved))
        # The first few, for the transition log (bounded, see transitions).
        lanes = np.flatnonzero(moved)[:CHANGES_KEPT] if changed else None
        return changed, lanes, ring.advance(moved, now_unix_ms)

    def encode(self, status: np.ndarray, lane_words: int, nbytes: int) -> bytes:
        """Lane-order statuses (one byte each) -> the 2-bit wire layout.

        The inverse of the count's folds: bytes merge into nibbles, nibbles
        into 2-bit lanes, four word-wide passes in all.
        """
        words = status.view(np.uint64).reshape(2, 2, lane_words)
        nibbles = np.left_shift(words[:, 0], np.uint64(4))
        nibbles |= words[:, 1]
        pairs = np.left_shift(nibbles[0], np.uint64(2))
        pairs |= nibbles[1]
        return pairs.view(np.uint8)[:nbytes].tobytes()
