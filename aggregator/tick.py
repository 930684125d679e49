"""One aggregator tick: votes in, the published health snapshot out.

API::

    engine = TickEngine(registry, fleet)
    slots = engine.new_slots()          # a SlotMatrix, one row per fleet.checker_ids entry
    ...                                 # ingest: slots.write(row, validated_payload)
    result = engine.compute(slots, fresh, now_unix_ms)
    result.states                       # bytes: the HealthSnapshot payload (2-bit layout)
    result.changed                      # int: checks whose status changed this tick
    result.status                       # uint8 per check, 1 healthy / 2 unhealthy
    result.healthy_votes                # per check, fresh 01 votes (uint8, uint16 > 255 checkers)
    result.reporting_votes              # per check, fresh 01 or 10 votes
    result.last_change_unix_ms          # int64 per check, 0 when it never changed
    result.votes(indices)               # (healthy, reporting) for a few checks, cheap
    result.status_counts()              # checks per status 0..2, cheap

    new_engine = TickEngine(new_registry, fleet)
    new_engine.inherit(engine)          # on a registry change, before its first tick

``compute`` costs the same whatever the votes say: no branch depends on the
data (selects are bitwise, not masked copies), stale checkers are masked
rather than skipped, and it allocates only the arrays its result keeps. A
tick in a failure storm costs what a quiet one does. The per-check arrays
above are produced lazily, on
first access, from lane-order arrays the tick keeps (see
:mod:`healthplane.aggregator.votes`), so a tick whose result nobody inspects per check
never pays for reordering a million checks. Each result owns its statuses
and vote counts; later ticks never change them. Last-change times are kept
in two alternating buffers: a result's stay readable until two ticks later
(the latest result always can), after which reading them raises rather
than return a newer tick's times.

The rules, in order:

1. **Votes.** Over the rows marked fresh, healthy = count of ``01``,
   reporting = count of ``01`` or ``10``. The vote status is healthy when
   healthy > healthy_fraction x reporting, computed exactly in integers with
   the fraction as written (0.18 is 9/50, so exactly 18 % healthy is
   unhealthy).
2. **Inversion** flips the vote status (Route 53 inverts the computed
   status).
3. **No fresh vote** (reporting == 0): the check takes ``fleet.unknown_as``
   as its *final* status: healthy, unhealthy, or for ``last_known`` the final
   status it last had from votes (healthy if it never had one). Inversion is
   not applied to it: unknown_as says what an operator wants published when
   nothing is known, and ``healthy`` must keep failing open for an inverted
   check too. An inverted check's last known status is its inverted one.
4. **Disabled** checks are healthy, whatever the votes.
5. **Calculated** checks, level by level in dependency order: healthy when at
   least healthy_threshold children are healthy (after all the rules above;
   0 is always healthy, more than the child count never), then inverted if
   set; disabled still wins. They have no votes of their own: checkers'
   states for them are ignored and their vote counts read 0.

The published snapshot never carries ``00``: every check is resolved, so a
DNS server reads the status as is.

The first tick establishes every status without counting it as a change;
after that, a check whose status differs from the previous tick counts in
``changed`` and gets ``last_change_unix_ms = now_unix_ms``.

**A new registry** means a new engine. ``inherit(old_engine)`` hands it the
old one's memory by check id (see :mod:`healthplane.aggregator.tick_memory`): for every
check in both registries, its last status, last known status and last change
time, so adding a check neither revives a dead endpoint under
``last_known`` nor resets when anything changed. Checks new to the registry
start as never seen, and their first status is not counted as a change.
This costs a few gathers once per registry change; the tick does not pay
for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from healthplane.aggregator.calculated import calculated_levels
from healthplane.aggregator.tick_memory import CheckMemory, LaneMemory, carry, from_lanes, to_lanes
from healthplane.aggregator.tick_result import LastChangeRing, TickResult
from healthplane.aggregator.votes import SlotMatrix, VoteCounter, lane_of, to_lane_order
from healthplane.proto import codec
from healthplane.proto.config.model import Fleet, Registry

__all__ = ["SlotMatrix", "TickEngine", "TickResult", "calculated_levels", "exact_fraction"]


def exact_fraction(value: float) -> Fraction:
    """The fraction as the operator wrote it: 0.18 -> 9/50, not the nearest double."""
    return Fraction(repr(float(value)))


@dataclass(frozen=True)
class _Level:
    """One dependency level of calculated checks, as lane positions."""

    pos: np.ndarray        # lanes of the calculated checks
    child_pos: np.ndarray  # lanes of all their children, concatenated
    owner: np.ndarray      # for each child, the index into pos it belongs to
    threshold: np.ndarray  # healthy_threshold per calculated check
    keep: np.ndarray       # see _Layout
    flip: np.ndarray


@dataclass(frozen=True)
class _Layout:
    """Per-lane constants for one slot geometry.

    status = (vote_status & keep) ^ flip applies inversion and disabling in
    two passes: keep is 0 for disabled checks and padding lanes, 3 elsewhere;
    flip is 1 (healthy) for disabled checks, 3 (swap 01 and 10) for inverted
    ones. novote is non-zero for lanes that never take unknown_as: disabled
    and calculated checks and the padding past the last check.
    """

    counter: VoteCounter
    keep: np.ndarray
    flip: np.ndarray
    novote: np.ndarray
    levels: tuple[_Level, ...]


class TickEngine:
    """Folds the fresh slots into one health snapshot per call to compute()."""

    def __init__(self, registry: Registry, fleet: Fleet) -> None:
        self.registry = registry
        self.fleet = fleet
        self.check_count = registry.check_count
        self.nbytes = codec.packed_size(self.check_count)
        if fleet.unknown_as not in ("healthy", "unhealthy", "last_known"):
            raise ValueError(f"unknown_as must be healthy, unhealthy or last_known, "
                             f"got {fleet.unknown_as!r}")
        self._unknown_as = fleet.unknown_as
        self._calc_levels = calculated_levels(registry)
        frac = exact_fraction(fleet.healthy_fraction)
        if frac < 0:
            raise ValueError(f"healthy_fraction must be >= 0, got {fleet.healthy_fraction}")
        self._fraction = frac
        self._layout: _Layout | None = None
        self._layout_key: tuple[int, ...] | None = None
        self._prev: np.ndarray | None = None
        self._last_known: np.ndarray | None = None
        self._last_change: LastChangeRing | None = None
        self._vote_bufs: tuple | None = None
        # Memory from inherit() (or a change of slot geometry), in check
        # order until the next layout spreads it over the lanes.
        self._carried: CheckMemory | None = None
        # Lanes that have a previous status, for the first tick after inherit().
        self._established: np.ndarray | None = None

    def new_slots(self) -> SlotMatrix:
        """An empty slot matrix for this fleet and registry."""
        return SlotMatrix(len(self.fleet.checker_ids), self.check_count)

    # -- per-geometry constants ------------------------------------------

    def _layout_for(self, slots: SlotMatrix) -> _Layout:
        key = (slots.n_chunks, slots.rows_padded, slots.chunk_words, slots.n_rows)
        if self._layout is not None and key == self._layout_key:
            return self._layout
        if slots.check_count != self.check_count:
            raise ValueError(f"slot matrix holds {slots.check_count} checks, "
                             f"registry has {self.check_count}")
        nw = slots.lane_words
        if self._prev is not None and self._prev.size != 32 * nw:
            # Lane positions moved (they depend on the words per row only, not
            # on the number of checkers): re-spread the memory through check order.
            self._carried = self.memory()
            self._prev = self._last_known = self._last_change = self._established = None
        checks = self.registry.checks
        disabled = np.array([c.disabled for c in checks], dtype=bool)
        inverted = np.array([c.inverted for c in checks], dtype=bool)
        calculated = np.array([c.type == "calculated" for c in checks], dtype=bool)
        keep = np.where(disabled, 0, 3).astype(np.uint8)
        flip = np.where(disabled, 1, np.where(inverted, 3, 0)).astype(np.uint8)
        novote = (disabled | calculated).astype(np.uint8)
        index = self.registry.index_of()
        levels = []
        for level in self._calc_levels:
            ids = np.array(level, dtype=np.int64)
            children = [[index[ch] for ch in checks[i].children] for i in level]
            owner = np.repeat(np.arange(len(level)), [len(c) for c in children])
            flat = np.array([j for c in children for j in c], dtype=np.int64)
            levels.append(_Level(
                pos=lane_of(ids, nw),
                child_pos=lane_of(flat, nw),
                owner=owner,
                threshold=np.array([checks[i].healthy_threshold for i in level],
                                   dtype=np.int64),
                keep=keep[ids], flip=flip[ids]))
        self._layout = _Layout(
            counter=VoteCounter(slots),
            keep=to_lane_order(keep, nw, fill=0),
            flip=to_lane_order(flip, nw, fill=0),
            novote=to_lane_order(novote, nw, fill=1),
            levels=tuple(levels))
        self._layout_key = key
        if self._carried is not None:
            lanes = to_lanes(self._carried, nw, inverted)
            self._prev, self._last_change = lanes.status, lanes.last_change
            self._established = lanes.established
            if self._unknown_as == "last_known":
                self._last_known = lanes.last_known
            self._carried = None
        return self._layout

    # -- memory across registries ------------------------------------------

    def memory(self) -> CheckMemory | None:
        """This engine's per-check memory in registry order (copies); None before any."""
        if self._carried is not None:
            return self._carried
        if self._prev is None or self._last_change is None:
            return None
        assert self._layout is not None  # _prev is only ever set with a layout
        return from_lanes(self.registry.ids, LaneMemory(
            self._prev, self._last_known, self._last_change, self._established),
            self._layout.flip, self._layout.novote)

    def inherit(self, old: TickEngine, source: np.ndarray | None = None) -> None:
        """Take over old's per-check memory by check id; call before the first tick.

        old is the engine of the registry being replaced (it may have ticked
        or inherited in turn). source, when already built, is
        ``aggregator.remap.source_indices(old.registry.ids, self.registry.ids)``
        (``Remap.source``). See :mod:`healthplane.aggregator.tick_memory` for what moves.
        """
        if self._prev is not None or self._carried is not None:
            raise RuntimeError("inherit() must come before the engine's first tick")
        mem = old.memory()
        if mem is not None:
            self._carried = carry(mem, self.registry.ids, source)

    # -- the tick ----------------------------------------------------------

    def _vote_healthy(self, healthy: np.ndarray, unhealthy: np.ndarray,
                      max_votes: int) -> np.ndarray:
        """healthy > fraction x (healthy + unhealthy), exactly, per lane."""
        num, den = self._fraction.numerator, self._fraction.denominator
        if num == 0:
            return healthy > 0
        if num >= den:
            return np.zeros(healthy.shape, dtype=bool)
        # healthy * den > fraction... rearranged to stay in unsigned integers:
        # healthy * (den - num) > unhealthy * num.
        a, b = den - num, num
        top = max(a, b) * max(max_votes, 1)
        if top < 1 << 16:
            dt: type[np.unsignedinteger] = np.uint16
        elif top < 1 << 32:
            dt = np.uint32
        elif top < 1 << 64:
            dt = np.uint64
        else:
            # A fraction with more digits than a double carries anyway.
            f = self._fraction.limit_denominator((1 << 63) // max(max_votes, 1))
            a, b, dt = f.denominator - f.numerator, f.numerator, np.uint64
        # Into preallocated wide buffers: numpy's uint8 -> uint16 cast on the
        # way is an order of magnitude faster this way than with dtype=.
        key = (healthy.size, np.dtype(dt).str)
        if self._vote_bufs is None or self._vote_bufs[0] != key:
            self._vote_bufs = (key, np.empty(healthy.size, dt), np.empty(healthy.size, dt))
        _, lhs, rhs = self._vote_bufs
        np.multiply(healthy, dt(a), out=lhs, casting="unsafe")
        np.multiply(unhealthy, dt(b), out=rhs, casting="unsafe")
        return lhs > rhs

    def compute(self, slots: SlotMatrix, fresh: np.ndarray, now_unix_ms: int) -> TickResult:
        """Count the fresh slots' votes and apply every rule; see the module docstring.

        fresh: one bool per row (fleet.checker_ids order), true when that
        checker's latest snapshot is recent enough to vote.
        """
        lay = self._layout_for(slots)
        healthy, unhealthy = lay.counter.count(slots, fresh)
        reporting = np.add(healthy, unhealthy)
        vote_ok = self._vote_healthy(healthy, unhealthy, slots.n_rows)

        # 1 healthy / 2 unhealthy, then inversion and disabling.
        status = np.subtract(np.uint8(2), vote_ok.view(np.uint8))
        status &= lay.keep
        status ^= lay.flip

        # Unknown lanes take unknown_as. A branch-free select (0xFF where
        # unknown): a masked copy costs ten times more on a random mask than
        # on a uniform one, and a failure storm must not make the tick slower.
        unknown = np.negative((np.bitwise_or(reporting, lay.novote) == 0).view(np.uint8))
        if self._unknown_as == "last_known":
            if self._last_known is None:
                self._last_known = np.full(status.size, codec.HEALTHY, dtype=np.uint8)
            fill: np.ndarray | np.uint8 = self._last_known
        else:
            fill = np.uint8(codec.HEALTHY if self._unknown_as == "healthy"
                            else codec.UNHEALTHY)
        pick = np.bitwise_xor(status, fill)
        pick &= unknown
        status ^= pick
        if self._unknown_as == "last_known":
            # Every voted lane now holds its fresh status, every unknown one
            # its previous last known: the new last known is status itself
            # (calculated lanes, changed below, never read it).
            self._last_known = status

        for lv in lay.levels:
            ok = status[lv.child_pos] == codec.HEALTHY
            healthy_children = np.bincount(lv.owner, weights=ok, minlength=lv.pos.size)
            calc = np.where(healthy_children >= lv.threshold,
                            np.uint8(codec.HEALTHY), np.uint8(codec.UNHEALTHY))
            calc &= lv.keep
            calc ^= lv.flip
            status[lv.pos] = calc
            # Checkers' states for a calculated check are not votes.
            healthy[lv.pos] = 0
            reporting[lv.pos] = 0

        if self._last_change is None or self._last_change.bufs[0].size != status.size:
            self._last_change = LastChangeRing(status.size)
        if self._prev is None:
            changed = 0
            ring_tick = self._last_change.advance(None, now_unix_ms)
        else:
            moved = status != self._prev
            if self._established is not None:
                # First tick after inherit(): a check new to the registry
                # gets its first status; that is no change.
                moved &= self._established
                self._established = None
            changed = int(np.count_nonzero(moved))
            ring_tick = self._last_change.advance(moved, now_unix_ms)
        self._prev = status

        return TickResult(
            states=self._encode(status, slots.lane_words),
            changed=changed,
            generated_unix_ms=int(now_unix_ms),
            check_count=self.check_count,
            lanes_status=status,
            lanes_healthy=healthy,
            lanes_reporting=reporting,
            last_change=self._last_change,
            last_change_tick=ring_tick,
            lane_words=slots.lane_words)

    def _encode(self, status: np.ndarray, lane_words: int) -> bytes:
        """Lane-order statuses (one byte each) -> the 2-bit wire layout.

        The inverse of the count's folds: bytes merge into nibbles, nibbles
        into 2-bit lanes, four word-wide passes in all.
        """
        words = status.view(np.uint64).reshape(2, 2, lane_words)
        nibbles = np.left_shift(words[:, 0], np.uint64(4))
        nibbles |= words[:, 1]
        pairs = np.left_shift(nibbles[0], np.uint64(2))
        pairs |= nibbles[1]
        return pairs.view(np.uint8)[: self.nbytes].tobytes()
