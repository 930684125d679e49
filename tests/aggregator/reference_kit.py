"""A slow, obviously-correct stand-in for the tick engine, for server tests only.

It follows the vote rule of the design (healthy when healthy votes >
healthy_fraction x reporting votes; unknown_as; disabled; inverted;
calculated) with plain numpy unpacking. The server tests use it so they
exercise the wiring, not the engine's speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aggregator.kit import EngineKit
from proto import codec
from proto.config.model import Fleet, Registry


class RefSlots:
    def __init__(self, rows: int, check_count: int) -> None:
        self.data = np.zeros((rows, codec.packed_size(check_count)), dtype=np.uint8)
        self.check_count = check_count

    def write(self, row: int, payload: bytes) -> None:
        self.data[row, :] = np.frombuffer(payload, dtype=np.uint8)

    def row(self, row: int) -> np.ndarray:
        return self.data[row]


@dataclass
class RefResult:
    states: bytes
    healthy_votes: np.ndarray
    reporting_votes: np.ndarray
    status: np.ndarray
    last_change_unix_ms: np.ndarray
    changed: int


class RefEngine:
    def __init__(self, registry: Registry, fleet: Fleet) -> None:
        self.registry, self.fleet = registry, fleet
        n = registry.check_count
        self.last = np.full(n, codec.HEALTHY, dtype=np.uint8)  # never seen: healthy
        self.final = np.zeros(n, dtype=np.uint8)
        self.last_change = np.zeros(n, dtype=np.int64)
        self.first = True

    def compute(self, slots: RefSlots, fresh: np.ndarray, now_unix_ms: int) -> RefResult:
        n = self.registry.check_count
        healthy = np.zeros(n, dtype=np.uint32)
        reporting = np.zeros(n, dtype=np.uint32)
        for r in np.flatnonzero(fresh):
            st = codec.unpack(slots.data[r].tobytes(), n)
            healthy += st == codec.HEALTHY
            reporting += st != codec.UNKNOWN
        voted = np.where(healthy > self.fleet.healthy_fraction * reporting,
                         codec.HEALTHY, codec.UNHEALTHY).astype(np.uint8)
        ua = self.fleet.unknown_as
        fill = self.last if ua == "last_known" else np.full(
            n, codec.HEALTHY if ua == "healthy" else codec.UNHEALTHY, dtype=np.uint8)
        status = np.where(reporting > 0, voted, fill).astype(np.uint8)
        self.last = np.where(reporting > 0, voted, self.last).astype(np.uint8)
        index = self.registry.index_of()
        for i, c in enumerate(self.registry.checks):
            if c.type == "calculated":
                continue
            if c.inverted:
                status[i] = codec.UNHEALTHY if status[i] == codec.HEALTHY else codec.HEALTHY
            if c.disabled:
                status[i] = codec.HEALTHY
        done: set[int] = set()

        def calc(i: int) -> None:
            if i in done:
                return
            c = self.registry.checks[i]
            for ch in c.children:
                if self.registry.checks[index[ch]].type == "calculated":
                    calc(index[ch])
            ok = sum(status[index[ch]] == codec.HEALTHY for ch in c.children)
            status[i] = codec.HEALTHY if ok >= c.healthy_threshold else codec.UNHEALTHY
            if c.disabled:
                status[i] = codec.HEALTHY
            done.add(i)

        for i, c in enumerate(self.registry.checks):
            if c.type == "calculated":
                calc(i)
        changed_mask = (status != self.final) & ~np.bool_(self.first)
        self.last_change[changed_mask] = now_unix_ms
        self.final = status.copy()
        self.first = False
        return RefResult(codec.pack(status), healthy, reporting, status,
                         self.last_change.copy(), int(np.count_nonzero(changed_mask)))


def ref_build_remap(old_ids: Sequence[str], registry: Registry):
    new_index = registry.index_of()
    pairs = [(i, new_index[c]) for i, c in enumerate(old_ids) if c in new_index]
    old_n, new_n = len(old_ids), registry.check_count

    def remap(payload: bytes) -> bytes:
        old = codec.unpack(payload, old_n)
        new = np.zeros(new_n, dtype=np.uint8)
        for o, n in pairs:
            new[n] = old[o]
        return codec.pack(new)

    return remap


REFERENCE_KIT = EngineKit(
    new_slots=lambda reg, fleet: RefSlots(len(fleet.checker_ids), reg.check_count),
    write=lambda slots, row, payload: slots.write(row, payload),
    row=lambda slots, r: slots.row(r),
    new_engine=RefEngine,
    build_remap=ref_build_remap,
)
