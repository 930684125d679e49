"""What a tick engine remembers per check, and moving it to a new registry by id.

A :class:`~aggregator.tick.TickEngine` is built for one registry. Its memory
is what makes a tick depend on earlier ones:

* the final status of the last tick (a status that differs next tick is a
  change);
* under ``unknown_as: last_known``, the final status each check last had
  from votes, which a check with no fresh vote falls back to; a check never
  seen holds ``healthy`` there, so "never seen" needs no flag of its own;
* when each check's status last changed (0: never).

When the aggregator adopts a new registry, :func:`carry` moves that memory
to the new registry's order by check id, so a check that exists in both
keeps its last known status and last change time however the checks around
it moved. Checks only the new registry has start as never seen and get their
first status without it counting as a change; checks it dropped are gone.
Everything is a gather by precomputed indices (the ones
:func:`aggregator.remap.source_indices` builds for payloads), once per
adoption; the tick itself never sees this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from healthplane.aggregator.remap import source_indices
from healthplane.aggregator.tick_result import LastChangeRing
from healthplane.aggregator.votes import to_check_order, to_lane_order
from healthplane.proto import codec


@dataclass(frozen=True)
class CheckMemory:
    """A tick engine's per-check memory, in registry order (check i is ids[i])."""

    ids: tuple[str, ...]
    status: np.ndarray               # uint8 final status of the last tick
    last_known: np.ndarray | None    # uint8; None when the engine keeps none
    last_change_unix_ms: np.ndarray  # int64, 0 when it never changed
    established: np.ndarray | None   # bool: has a previous status; None: every check
    inverted: np.ndarray             # bool: the inversion last_known was stored under
    novote: np.ndarray               # bool: took no votes (calculated, disabled)


def _gather(values: np.ndarray, src: np.ndarray, fill: int | bool) -> np.ndarray:
    """values[src], with fill where src is -1 (a sentinel slot, no masked copy)."""
    ext = np.empty(values.size + 1, dtype=values.dtype)
    ext[:-1] = values
    ext[-1] = fill
    return ext[np.where(src >= 0, src, values.size)]


def carry(memory: CheckMemory, new_ids: tuple[str, ...],
          source: np.ndarray | None = None) -> CheckMemory:
    """memory, moved to a registry whose checks are new_ids, by check id.

    source, when given, is source_indices(memory.ids, new_ids), already
    built for the payload remap. A check that took no votes (calculated or
    disabled) has no last known vote to keep: it starts as never seen.
    """
    if source is None:
        source = (np.arange(len(new_ids)) if memory.ids == new_ids
                  else source_indices(memory.ids, new_ids))
    if source.shape != (len(new_ids),):
        raise ValueError(f"source maps {source.size} checks, the new registry has "
                         f"{len(new_ids)}")
    old_established = (memory.established if memory.established is not None
                       else np.ones(len(memory.ids), dtype=bool))
    established = _gather(old_established, source, False)
    novote = _gather(memory.novote, source, True)
    last_known = None
    if memory.last_known is not None:
        last_known = _gather(memory.last_known, source, codec.HEALTHY)
        last_known[novote] = codec.HEALTHY
    return CheckMemory(
        ids=new_ids,
        status=_gather(memory.status, source, 0),
        last_known=last_known,
        last_change_unix_ms=_gather(memory.last_change_unix_ms, source, 0),
        established=None if established.all() else established,
        inverted=_gather(memory.inverted, source, False),
        novote=novote)


@dataclass
class LaneMemory:
    """The same memory in lane order (see healthplane.aggregator.votes), as the tick keeps it."""

    status: np.ndarray
    last_known: np.ndarray | None
    last_change: LastChangeRing
    established: np.ndarray | None


def to_lanes(memory: CheckMemory, lane_words: int, inverted: np.ndarray) -> LaneMemory:
    """Spread memory over the lanes of a slot geometry with lane_words words per row.

    inverted: per check, whether the engine taking the memory inverts it. A
    check whose inversion was switched keeps its last vote, not its old
    inversion: its last known status flips (1 <-> 2).
    """
    last_known = memory.last_known
    if last_known is not None:
        switched = (memory.inverted != inverted) & ~memory.novote
        if switched.any():
            last_known = last_known.copy()
            last_known[switched] ^= 3
    ring = LastChangeRing(32 * lane_words)
    # The ring's tick 0 is the buffer its first advance reads as "before".
    ring.bufs[0][:] = to_lane_order(memory.last_change_unix_ms, lane_words, fill=0)
    return LaneMemory(
        status=to_lane_order(memory.status, lane_words, fill=0),
        last_known=(None if last_known is None
                    else to_lane_order(last_known, lane_words, fill=codec.HEALTHY)),
        last_change=ring,
        established=(None if memory.established is None
                     else to_lane_order(memory.established, lane_words, fill=False)))


def from_lanes(ids: tuple[str, ...], lanes: LaneMemory, flip: np.ndarray,
               novote: np.ndarray) -> CheckMemory:
    """Back to registry order: copies, so the engine may go on ticking.

    flip and novote are the engine's per-lane constants (see healthplane.aggregator.tick):
    flip is 3 exactly on inverted checks that are not disabled.
    """
    n = len(ids)
    ring = lanes.last_change
    return CheckMemory(
        ids=ids,
        status=to_check_order(lanes.status, n),
        last_known=None if lanes.last_known is None else to_check_order(lanes.last_known, n),
        last_change_unix_ms=to_check_order(ring.get(ring.tick), n),
        established=(None if lanes.established is None
                     else to_check_order(lanes.established, n)),
        inverted=to_check_order(flip, n) == 3,
        novote=to_check_order(novote, n) != 0)
