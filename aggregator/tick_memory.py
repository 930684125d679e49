"""What a tick engine remembers per check, and moving it by check id.

A :class:`~healthplane.aggregator.tick.TickEngine` is built for one registry.
Its memory is what makes a tick depend on earlier ones:

* the final status of the last tick (a status that differs next tick is a
  change);
* under ``unknown_as: last_known``, the final status each check last had
  from votes, which a check with no fresh vote falls back to; a check never
  seen holds ``healthy`` there, so "never seen" needs no flag of its own;
* when each check's status last changed (0: never).

The memory has one form, :class:`TickMemory`: per lane, in the lane order
the tick works in (see :mod:`healthplane.aggregator.votes`), so a tick reads
and replaces it without reordering anything. :func:`carry` moves it, by check
id, to another registry or another slot geometry in one gather per array: a
check that exists in both keeps its last known status and last change time
however the checks around it moved. Checks only the new registry has start
as never seen and get their first status without it counting as a change;
checks it dropped are gone. This runs once per registry change (or change of
slot geometry); the tick never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from healthplane.aggregator.remap import source_indices
from healthplane.aggregator.tick_result import LastChangeRing
from healthplane.aggregator.votes import lane_of, to_lane_order
from healthplane.proto import codec


@dataclass(frozen=True)
class TickMemory:
    """A tick engine's per-check memory, per lane of a geometry of lane_words.

    Check ``index`` (id ``ids[index]``) sits at lane ``lane_of(index,
    lane_words)``; lanes past the last check hold the fill values.
    """

    ids: tuple[str, ...]
    lane_words: int
    status: np.ndarray               # uint8 final status of the last tick (0: none yet)
    last_known: np.ndarray | None    # uint8; None when the engine keeps none
    last_change: LastChangeRing      # its latest buffer holds the times (0: never changed)
    established: np.ndarray | None   # bool: has a previous status; None: every check
    inverted: np.ndarray             # bool: the inversion last_known is stored under
    novote: np.ndarray               # bool: last_known holds no vote (never seen, no votes)

    def last_change_unix_ms(self) -> np.ndarray:
        return self.last_change.latest()


def _gather(values: np.ndarray, src: np.ndarray, fill: int | bool) -> np.ndarray:
    """values[src], with fill where src is -1 (a sentinel slot, no masked copy)."""
    ext = np.empty(values.size + 1, dtype=values.dtype)
    ext[:-1] = values
    ext[-1] = fill
    return ext[np.where(src >= 0, src, values.size)]


def _source_lanes(memory: TickMemory, source: np.ndarray, lane_words: int) -> np.ndarray:
    """Per lane of the new geometry, the old lane its check comes from, or -1."""
    old_lanes = np.where(source >= 0, lane_of(np.maximum(source, 0), memory.lane_words), -1)
    return to_lane_order(old_lanes, lane_words, fill=-1)


def from_check_order(ids: tuple[str, ...], lane_words: int, *, status: np.ndarray,
                     last_known: np.ndarray | None, last_change_unix_ms: np.ndarray,
                     established: np.ndarray | None, inverted: np.ndarray,
                     novote: np.ndarray) -> TickMemory:
    """A memory from per-check arrays in the order of ids (e.g. read back from a file)."""
    def lanes(values: np.ndarray, fill: int | bool) -> np.ndarray:
        return to_lane_order(np.asarray(values), lane_words, fill=fill)

    ring = LastChangeRing(32 * lane_words)
    ring.bufs[0][:] = lanes(np.asarray(last_change_unix_ms, dtype=np.int64), 0)
    return TickMemory(
        ids=ids, lane_words=lane_words,
        status=lanes(np.asarray(status, dtype=np.uint8), 0),
        last_known=(None if last_known is None
                    else lanes(np.asarray(last_known, dtype=np.uint8), codec.HEALTHY)),
        last_change=ring,
        established=(None if established is None
                     else lanes(np.asarray(established, dtype=bool), False)),
        inverted=lanes(np.asarray(inverted, dtype=bool), False),
        novote=lanes(np.asarray(novote, dtype=bool), True))


def carry(memory: TickMemory, new_ids: tuple[str, ...], lane_words: int, *,
          inverted: np.ndarray | None = None,
          source: np.ndarray | None = None) -> TickMemory:
    """memory, moved to the registry whose checks are new_ids, laid out for lane_words.

    inverted: per new check, whether the engine taking the memory inverts
    it (None: as the memory has it). A check whose inversion was switched
    keeps its last vote, not its old inversion: its last known status flips
    (1 <-> 2). source, when given, is ``source_indices(old ids, new ids)``,
    already built for the payload remap. A check that took no votes
    (calculated or disabled) has no last known vote to keep: it starts as
    never seen.
    """
    n = len(new_ids)
    if source is None:
        source = (np.arange(n) if memory.ids is new_ids or memory.ids == new_ids
                  else source_indices(memory.ids, new_ids))
    if source.shape != (n,):
        raise ValueError(f"source maps {source.size} checks, the new registry has {n}")
    src = _source_lanes(memory, source, lane_words)
    old_established = (memory.established if memory.established is not None
                       else np.ones(memory.status.size, dtype=bool))
    established = _gather(old_established, src, False)
    novote = _gather(memory.novote, src, True)
    old_inverted = _gather(memory.inverted, src, False)
    new_inverted = (old_inverted if inverted is None
                    else to_lane_order(np.asarray(inverted, dtype=bool), lane_words, fill=False))
    last_known = None
    if memory.last_known is not None:
        last_known = _gather(memory.last_known, src, codec.HEALTHY)
        last_known[novote] = codec.HEALTHY
        last_known[(old_inverted != new_inverted) & ~novote] ^= 3
    ring = LastChangeRing(32 * lane_words)
    # The ring's tick 0 is the buffer its first advance reads as "before".
    ring.bufs[0][:] = _gather(memory.last_change_unix_ms(), src, 0)
    return TickMemory(
        ids=new_ids,
        lane_words=lane_words,
        status=_gather(memory.status, src, 0),
        last_known=last_known,
        last_change=ring,
        # Padding lanes read False; every check established leaves exactly n set.
        established=None if np.count_nonzero(established) == n else established,
        inverted=new_inverted,
        novote=novote)
