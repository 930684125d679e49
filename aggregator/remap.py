"""Move a payload from an older registry's layout to the current one, by check id.

A checker still on the previous registry version sends its states in that
registry's order. The aggregator must never read them in the current order
(a vote would land on the wrong check), so ingest translates each such
payload once, on arrival, and the slot then holds current-layout states like
every other row. The tick never sees old layouts.

API::

    remap = build_remap(old_ids, registry)   # once per (old version, new registry)
    new_payload = remap(old_payload)         # or remap.apply(old_payload)

Checks of the new registry that the old one lacks read ``00`` (unknown: that
checker has no vote for them); checks the new registry dropped are gone.
Building the map costs one pass over the ids; applying it is a few numpy
passes over the payload (one gather by precomputed indices), never a Python
loop per check. When the ids are unchanged, or checks were only appended or
only removed from the end, the payload is copied or cut instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from healthplane.proto import codec
from healthplane.proto.config.model import Registry


def source_indices(old_ids: Sequence[str], new_ids: Sequence[str]) -> np.ndarray:
    """For each new id, its index among old_ids, or -1 when the old ids lack it.

    The one id-to-id map of the aggregator: payloads (Remap) and the tick
    engine's per-check memory (TickEngine.inherit) move by it. One pass over
    each list of ids; raises ValueError when an old id appears twice.
    """
    old_index: dict[str, int] = {}
    for i, cid in enumerate(old_ids):
        if cid in old_index:
            raise ValueError(f"check id {cid!r} appears twice in the old registry")
        old_index[cid] = i
    return np.fromiter((old_index.get(cid, -1) for cid in new_ids), dtype=np.int64,
                       count=len(new_ids))


class Remap:
    """A precomputed old-layout to new-layout translation. Call it on payloads."""

    def __init__(self, old_ids: Sequence[str], new_ids: Sequence[str]) -> None:
        old_ids, new_ids = tuple(old_ids), tuple(new_ids)
        src = source_indices(old_ids, new_ids)
        self.old_count, self.new_count = len(old_ids), len(new_ids)
        self.old_nbytes = codec.packed_size(self.old_count)
        self.new_nbytes = codec.packed_size(self.new_count)
        common = min(self.old_count, self.new_count)
        prefix = old_ids[:common] == new_ids[:common]
        # Appended (or nothing changed): the old bytes then zeros. Removed from
        # the end: the old bytes cut, with the new padding bits cleared.
        self.kind = "prefix" if prefix else "gather"
        self.source = src  # per new check, its old index or -1 (TickEngine.inherit reuses it)
        self.mapped = int(np.count_nonzero(src >= 0))
        # Missing ids read the sentinel byte appended after the old payload,
        # which is always zero.
        self._byte = np.where(src >= 0, src >> 2, self.old_nbytes)
        self._shift = np.where(src >= 0, 6 - 2 * (src & 3), 0).astype(np.uint8)
        used = self.new_count % 4
        self._last_mask = 0xFF if used == 0 else (0xFF << (8 - 2 * used)) & 0xFF

    def apply(self, payload: bytes | bytearray | memoryview) -> bytes:
        """The payload in the new layout. Raises codec.SnapshotError on a wrong length."""
        if len(payload) != self.old_nbytes:
            raise codec.SnapshotError(
                f"payload is {len(payload)} bytes, expected {self.old_nbytes} "
                f"for the old registry's {self.old_count} checks")
        if self.kind == "prefix":
            if self.new_count >= self.old_count:
                return bytes(payload) + bytes(self.new_nbytes - self.old_nbytes)
            out = bytearray(payload[: self.new_nbytes])
            if out:
                out[-1] &= self._last_mask
            return bytes(out)
        old = np.zeros(self.old_nbytes + 1, dtype=np.uint8)
        old[:-1] = np.frombuffer(payload, dtype=np.uint8)
        states = (old[self._byte] >> self._shift) & 0x3
        return codec.pack(states)

    __call__ = apply


def build_remap(old_ids: Sequence[str], new_registry: Registry) -> Remap:
    """A Remap from a registry whose ids were old_ids (in order) to new_registry."""
    return Remap(old_ids, new_registry.ids)
