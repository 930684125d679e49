"""The tick's constants: per-lane rules of one registry, and the exact vote rule.

Everything here is computed once per registry and slot geometry (a
:class:`Layout`) or once per engine (a :class:`VoteRule`), so the tick itself
is a fixed sequence of whole-array passes (see
:mod:`healthplane.aggregator.tick`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from healthplane.aggregator.votes import SlotMatrix, VoteCounter, lane_of, to_lane_order
from healthplane.proto.config.model import Fleet, Registry


def exact_fraction(value: float) -> Fraction:
    """The fraction as the operator wrote it: 0.18 -> 9/50, not the nearest double."""
    return Fraction(repr(float(value)))


@dataclass(frozen=True)
class Level:
    """One dependency level of calculated checks, as lane positions."""

    pos: np.ndarray        # lanes of the calculated checks
    child_pos: np.ndarray  # lanes of all their children, concatenated
    owner: np.ndarray      # for each child, the position in pos of the check it belongs to
    threshold: np.ndarray  # healthy_threshold per calculated check
    keep: np.ndarray       # see Layout
    flip: np.ndarray


@dataclass(frozen=True)
class Layout:
    """Per-lane constants for one registry and slot geometry.

    status = (vote_status & keep) ^ flip applies inversion and disabling in
    two passes: keep is 0 for disabled checks and padding lanes, 3 elsewhere;
    flip is 1 (healthy) for disabled checks, 3 (swap 01 and 10) for inverted
    ones. novote is non-zero for lanes that never take unknown_as: disabled
    and calculated checks and the padding past the last check. inverted and
    took_no_votes are the same facts as booleans, for the engine's memory.
    """

    counter: VoteCounter | None                  # the numpy count's scratch; None: not needed
    keep: np.ndarray
    flip: np.ndarray
    novote: np.ndarray
    levels: tuple[Level, ...]
    inverted: np.ndarray
    took_no_votes: np.ndarray
    min_votes: np.ndarray                        # per lane, the quorum of reporting votes
    min_regions: np.ndarray                      # per lane, of regions they come from
    region_rows: tuple[np.ndarray, ...] | None   # rows of each region; None: not needed
    region_of_row: np.ndarray | None             # int32 region index per row, same condition


def inverted_checks(registry: Registry) -> np.ndarray:
    """Per check index, whether the check is inverted (bool)."""
    return np.array(registry.column("inverted"), dtype=bool)


def build_layout(registry: Registry, calc_levels: list[list[int]],
                 slots: SlotMatrix, fleet: Fleet | None = None, *,
                 numpy_counter: bool = True) -> Layout:
    """The constants for registry on slots' geometry.

    calc_levels: the calculated checks' indices, level by level in dependency
    order (see :func:`healthplane.aggregator.calculated.calculated_levels`).
    numpy_counter: build the numpy count's scratch buffers (a few MB at a
    million checks), which the compiled kernel does not use.
    """
    nw = slots.lane_words
    checks = registry.checks
    disabled = np.array(registry.column("disabled"), dtype=bool)
    calculated = np.array([t == "calculated" for t in registry.column("type")], dtype=bool)
    keep = np.where(disabled, 0, 3).astype(np.uint8)
    flip = np.where(disabled, 1, np.where(inverted_checks(registry), 3, 0)).astype(np.uint8)
    novote = (disabled | calculated).astype(np.uint8)
    index_of = registry.index_of()
    levels = []
    for level in calc_levels:
        ids = np.array(level, dtype=np.int64)
        children = [[index_of[ch] for ch in checks[i].children] for i in level]
        owner = np.repeat(np.arange(len(level)), [len(c) for c in children])
        flat = np.array([j for c in children for j in c], dtype=np.int64)
        levels.append(Level(
            pos=lane_of(ids, nw),
            child_pos=lane_of(flat, nw),
            owner=owner,
            threshold=np.array([checks[i].healthy_threshold for i in level], dtype=np.int64),
            keep=keep[ids], flip=flip[ids]))
    fleet_votes = fleet.min_votes if fleet is not None else 1
    fleet_regions = fleet.min_regions if fleet is not None else 1
    min_votes = np.array([v or fleet_votes for v in registry.column("min_votes")],
                         dtype=np.uint16)
    min_regions = np.array([v or fleet_regions for v in registry.column("min_regions")],
                           dtype=np.uint16)
    region_rows = region_of_row = None
    if fleet is not None and min_regions.size and int(min_regions.max()) > 1:
        region_of = [fleet.region_of(cid) for cid in fleet.checker_ids]
        region_rows = tuple(np.array([r == name for r in region_of], dtype=bool)
                            for name in fleet.regions)
        number = {name: k for k, name in enumerate(fleet.regions)}
        region_of_row = np.array([number.get(r, -1) if r is not None else -1
                                  for r in region_of], dtype=np.int32)
    lane_flip = to_lane_order(flip, nw, fill=0)
    lane_novote = to_lane_order(novote, nw, fill=1)
    return Layout(
        counter=VoteCounter(slots) if numpy_counter else None,
        keep=to_lane_order(keep, nw, fill=0),
        flip=lane_flip,
        novote=lane_novote,
        levels=tuple(levels),
        inverted=lane_flip == 3,
        took_no_votes=lane_novote != 0,
        min_votes=to_lane_order(min_votes, nw, fill=1),
        min_regions=to_lane_order(min_regions, nw, fill=1),
        region_rows=region_rows,
        region_of_row=region_of_row)


class VoteRule:
    """healthy > fraction x (healthy + unhealthy), exactly, per lane."""

    def __init__(self, healthy_fraction: float) -> None:
        frac = exact_fraction(healthy_fraction)
        if frac < 0:
            raise ValueError(f"healthy_fraction must be >= 0, got {healthy_fraction}")
        self.fraction = frac
        self._bufs: tuple[tuple[int, str], np.ndarray, np.ndarray] | None = None

    def coefficients(self, max_votes: int) -> tuple[int, int]:
        """(a, b) with healthy > fraction x reporting  <=>  healthy * a > unhealthy * b,
        both products below 2**64 for counts up to max_votes."""
        num, den = self.fraction.numerator, self.fraction.denominator
        if num >= den:
            return 0, 1          # never: 0 > unhealthy * 1 is false
        # healthy * den > fraction... rearranged to stay in unsigned integers:
        # healthy * (den - num) > unhealthy * num (num 0: healthy > 0).
        a, b = den - num, num
        if max(a, b) * max(max_votes, 1) >= 1 << 64:
            # A fraction with more digits than a double carries anyway.
            f = self.fraction.limit_denominator((1 << 63) // max(max_votes, 1))
            a, b = f.denominator - f.numerator, f.numerator
        return a, b

    def healthy(self, healthy: np.ndarray, unhealthy: np.ndarray, max_votes: int) -> np.ndarray:
        """Per lane, whether the votes say healthy (bool)."""
        num, den = self.fraction.numerator, self.fraction.denominator
        if num == 0:
            return healthy > 0
        if num >= den:
            return np.zeros(healthy.shape, dtype=bool)
        a, b = self.coefficients(max_votes)
        top = max(a, b) * max(max_votes, 1)
        if top < 1 << 16:
            dt: type[np.unsignedinteger] = np.uint16
        elif top < 1 << 32:
            dt = np.uint32
        else:
            dt = np.uint64
        # Into preallocated wide buffers: numpy's uint8 -> uint16 cast on the
        # way is an order of magnitude faster this way than with dtype=.
        key = (healthy.size, np.dtype(dt).str)
        if self._bufs is None or self._bufs[0] != key:
            self._bufs = (key, np.empty(healthy.size, dt), np.empty(healthy.size, dt))
        _, lhs, rhs = self._bufs
        np.multiply(healthy, dt(a), out=lhs, casting="unsafe")
        np.multiply(unhealthy, dt(b), out=rhs, casting="unsafe")
        return lhs > rhs
