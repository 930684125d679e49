"""One aggregator tick: votes in, the published health snapshot out.

API::

    engine = TickEngine(registry, fleet)
    slots = engine.new_slots()          # a SlotMatrix, one row per fleet.checker_ids entry
    ...                                 # ingest: slots.write(row, validated_payload)
    result = engine.compute(slots, fresh, now_unix_ms, sequence=n)
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
old one's memory by check id (see :mod:`healthplane.aggregator.tick_memory`):
for every check in both registries, its last status, last known status and last change
time, so adding a check neither revives a dead endpoint under
``last_known`` nor resets when anything changed. Checks new to the registry
start as never seen, and their first status is not counted as a change.
This costs a few gathers once per registry change; the tick does not pay
for it.
"""

from __future__ import annotations

import numpy as np
from healthplane.aggregator.calculated import calculated_levels
from healthplane.aggregator.tick_kernel import passes_for
from healthplane.aggregator.tick_layout import Layout, VoteRule, build_layout, inverted_checks
from healthplane.aggregator.tick_memory import TickMemory, carry
from healthplane.aggregator.tick_passes import TickPasses
from healthplane.aggregator.tick_result import LastChangeRing, TickResult
from healthplane.aggregator.votes import SlotMatrix, lane_words_for
from healthplane.proto import codec
from healthplane.proto.config.model import Fleet, Registry


class TickEngine:
    """Folds the fresh slots into one health snapshot per call to compute()."""

    def __init__(self, registry: Registry, fleet: Fleet, *,
                 compiled: bool | None = None) -> None:
        """compiled: run the compiled kernel (True) or the numpy passes (False);
        None takes the path chosen at start (see aggregator.tick_kernel)."""
        self.registry = registry
        self.fleet = fleet
        self.check_count = registry.check_count
        self.ids = registry.ids  # built once: Registry.ids makes a new tuple per call
        self.nbytes = codec.packed_size(self.check_count)
        if fleet.unknown_as not in ("healthy", "unhealthy", "last_known"):
            raise ValueError(f"unknown_as must be healthy, unhealthy or last_known, "
                             f"got {fleet.unknown_as!r}")
        self._unknown_as = fleet.unknown_as
        self._calc_levels = calculated_levels(registry)
        self._rule = VoteRule(fleet.healthy_fraction)
        self._passes: TickPasses = passes_for(compiled)
        self._layout: Layout | None = None
        self._layout_key: tuple[int, ...] | None = None
        # What the next tick starts from: set by every tick, or by inherit().
        self._memory: TickMemory | None = None
        self._ticked = False

    def new_slots(self) -> SlotMatrix:
        """An empty slot matrix for this fleet and registry."""
        return SlotMatrix(len(self.fleet.checker_ids), self.check_count)

    def _layout_for(self, slots: SlotMatrix) -> Layout:
        key = (slots.n_chunks, slots.rows_padded, slots.chunk_words, slots.n_rows)
        if self._layout is not None and key == self._layout_key:
            return self._layout
        if slots.check_count != self.check_count:
            raise ValueError(f"slot matrix holds {slots.check_count} checks, "
                             f"registry has {self.check_count}")
        mem = self._memory
        if mem is not None and mem.lane_words != slots.lane_words:
            # Lane positions moved (they depend on the words per row only, not
            # on the number of checkers): the memory moves with the checks.
            self._memory = carry(mem, mem.ids, slots.lane_words)
        self._layout = build_layout(self.registry, self._calc_levels, slots, self.fleet,
                                    numpy_counter=self._passes.numpy_counter)
        self._layout_key = key
        return self._layout

    # -- memory across registries ------------------------------------------

    def memory(self) -> TickMemory | None:
        """What the next tick starts from (see tick_memory); None before any tick."""
        return self._memory

    def inherit(self, old: TickEngine, source: np.ndarray | None = None) -> None:
        """Take over old's per-check memory by check id; call before the first tick.

        old is the engine of the registry being replaced (it may have ticked
        or inherited in turn). source, when already built, is
        ``aggregator.remap.source_indices(old.registry.ids, self.registry.ids)``
        (``Remap.source``). See :mod:`healthplane.aggregator.tick_memory` for what moves.
        """
        if self._ticked or self._memory is not None:
            raise RuntimeError("inherit() must come before the engine's first tick")
        mem = old.memory()
        if mem is not None:
            self._memory = carry(mem, self.ids, lane_words_for(self.check_count),
                                 inverted=inverted_checks(self.registry), source=source)

    def restore(self, memory: TickMemory) -> None:
        """Start from persisted memory already on this registry (see aggregator.warmstart)."""
        if self._ticked or self._memory is not None:
            raise RuntimeError("restore() must come before the engine's first tick")
        if memory.ids != self.ids:
            raise ValueError("restored memory is on another registry; carry() it first")
        self._memory = memory

    # -- the tick ----------------------------------------------------------

    def compute(self, slots: SlotMatrix, fresh: np.ndarray, now_unix_ms: int, *,
                sequence: int = 0) -> TickResult:
        """Count the fresh slots' votes and apply every rule; see the module docstring.

        fresh: one bool per row (fleet.checker_ids order), true when that
        checker's latest snapshot is recent enough to vote. sequence: the
        number the result is published under (0: not published).
        """
        lay = self._layout_for(slots)
        mem = self._memory
        fill: np.ndarray | np.uint8
        if self._unknown_as == "last_known":
            fill = (mem.last_known if mem is not None and mem.last_known is not None
                    else np.full(32 * slots.lane_words, codec.HEALTHY, dtype=np.uint8))
        else:
            fill = np.uint8(codec.HEALTHY if self._unknown_as == "healthy"
                            else codec.UNHEALTHY)
        status, healthy, reporting = self._passes.votes(lay, slots, fresh, self._rule, fill)
        # Every voted lane now holds its fresh status, every unknown one its
        # previous last known: under last_known the new last known is status
        # itself (calculated lanes, changed below, never read it).
        last_known = status if self._unknown_as == "last_known" else None

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

        changed_lanes = None
        if mem is None:
            changed = 0
            ring = LastChangeRing(status.size)
            generation = ring.advance(None, now_unix_ms)
        else:
            ring = mem.last_change
            changed, changed_lanes, generation = self._passes.changes(
                status, mem.status, mem.established, ring, now_unix_ms)
        self._memory = TickMemory(
            ids=self.ids, lane_words=slots.lane_words, status=status,
            last_known=last_known, last_change=ring, established=None,
            inverted=lay.inverted, novote=lay.took_no_votes)
        self._ticked = True

        return TickResult(
            registry=self.registry,
            sequence=sequence,
            states=self._passes.encode(status, slots.lane_words, self.nbytes),
            changed=changed,
            fresh_checkers=int(np.count_nonzero(fresh)),
            generated_unix_ms=int(now_unix_ms),
            lanes_status=status,
            lanes_healthy=healthy,
            lanes_reporting=reporting,
            last_change=ring,
            last_change_generation=generation,
            lane_words=slots.lane_words,
            changed_lanes=changed_lanes)
