"""The tick's passes as compiled loops, with the numpy passes as the fallback.

``healthplane.aggregator._tick_kernel`` (``aggregator/_tick_kernel.c``)
counts the votes in one pass over the slot matrix: each tile of every
checker's words is read once and folded in SWAR counters that stay in L1,
with no temporary array per checker or per fold; the region quorum is
counted in the same pass. The vote rule, quorum and unknown_as are one more
loop over the lanes, the changes and last-change times another, and the
wire encoding a third. Each runs with the GIL released. The results are
the arrays the numpy passes make, lane for lane (the tests hold both to
the same reference), so the engine does not care which one it runs.

The path is chosen once at import: the compiled one when the extension was
built and ``HEALTHPLANE_PURE_PYTHON`` does not force the fallback. The
aggregator logs it at start (``tick kernel: compiled`` or ``python``).
"""

from __future__ import annotations

import logging

import numpy as np
from healthplane.aggregator.tick_layout import Layout, VoteRule
from healthplane.aggregator.tick_passes import CHANGES_KEPT, Fill, NumpyPasses, TickPasses
from healthplane.aggregator.tick_result import LastChangeRing
from healthplane.aggregator.votes import BATCH_ROWS, SlotMatrix

from healthplane.runtime import native

KERNEL = native.load("healthplane.aggregator._tick_kernel")


class CompiledPasses:
    """The passes of NumpyPasses, each one compiled loop (see the module docstring)."""

    name = "compiled"
    numpy_counter = False

    def __init__(self, kernel: object) -> None:
        self._k = kernel
        # Scratch the result does not keep, reused while the geometry holds.
        self._scratch: dict[tuple[int, str], np.ndarray] = {}
        self._kept = np.empty(CHANGES_KEPT, np.int64)

    def _buf(self, tag: str, size: int, dtype: type[np.unsignedinteger]) -> np.ndarray:
        key = (size, tag)
        buf = self._scratch.get(key)
        if buf is None or buf.dtype != dtype:
            if len(self._scratch) > 4:
                self._scratch.clear()
            buf = self._scratch[key] = np.empty(size, dtype)
        return buf

    def votes(self, lay: Layout, slots: SlotMatrix, fresh: np.ndarray, rule: VoteRule,
              fill: Fill) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lanes = 32 * slots.lane_words
        dt = np.uint8 if slots.rows_padded <= BATCH_ROWS else np.uint16
        healthy = np.empty(lanes, dt)
        unhealthy = self._buf("unhealthy", lanes, dt)
        fresh8 = np.ascontiguousarray(fresh, dtype=bool).view(np.uint8)
        if fresh8.shape != (slots.n_rows,):
            raise ValueError(f"fresh must have one entry per row ({slots.n_rows})")
        k = self._k
        if lay.region_rows is None or lay.region_of_row is None:
            regions = None
            k.count(slots.words, fresh8, slots.rows_padded,  # type: ignore[attr-defined]
                    slots.chunk_words, healthy, unhealthy)
        else:
            # Regions with a reporting vote, per lane, in the same pass.
            n_regions = len(lay.region_rows)
            rdt = np.uint8 if -(-n_regions // 3) * 3 <= BATCH_ROWS else np.uint16
            regions = self._buf("regions", lanes, rdt)
            k.count(slots.words, fresh8, slots.rows_padded,  # type: ignore[attr-defined]
                    slots.chunk_words, healthy, unhealthy,
                    lay.region_of_row, n_regions, regions)
        a, b = rule.coefficients(slots.n_rows)
        status = np.empty(lanes, np.uint8)
        reporting = np.empty(lanes, dt)
        per_lane = isinstance(fill, np.ndarray)
        k.finish(healthy, unhealthy, regions, lay.keep, lay.flip,  # type: ignore[attr-defined]
                 lay.novote, lay.min_votes, lay.min_regions, a, b,
                 fill if per_lane else None, 0 if per_lane else int(fill), status, reporting)
        return status, healthy, reporting

    def changes(self, status: np.ndarray, prev: np.ndarray, established: np.ndarray | None,
                ring: LastChangeRing, now_unix_ms: int) -> tuple[int, np.ndarray | None, int]:
        result: list[int] = []

        def write(before: np.ndarray, out: np.ndarray) -> None:
            result.extend(self._k.changes(  # type: ignore[attr-defined]
                status, prev, established, before, out, int(now_unix_ms), self._kept))

        generation = ring.advance(None, now_unix_ms, writer=write)
        changed, n_kept = result
        return changed, (self._kept[:n_kept].copy() if changed else None), generation

    def encode(self, status: np.ndarray, lane_words: int, nbytes: int) -> bytes:
        out: bytes = self._k.encode(status, nbytes)  # type: ignore[attr-defined]
        return out


PYTHON = NumpyPasses()


def default_passes() -> TickPasses:
    """The path chosen at import: compiled when built and not forced off.

    One CompiledPasses per engine: its scratch must not be shared by two
    engines ticking at once (the kernel runs without the GIL).
    """
    return CompiledPasses(KERNEL) if KERNEL is not None else PYTHON


def passes_for(compiled: bool | None) -> TickPasses:
    """compiled None: the default; True: the kernel (ImportError when not built)."""
    if compiled is None:
        return default_passes()
    if not compiled:
        return PYTHON
    if KERNEL is None:
        raise ImportError("the tick kernel (healthplane.aggregator._tick_kernel) is not built")
    return CompiledPasses(KERNEL)


def log_path(log: logging.Logger) -> None:
    """The start-up line that says which tick path this process runs."""
    path = native.path_name(KERNEL)
    extra = {"tick_kernel": path}
    if KERNEL is not None:
        extra["isa"] = KERNEL.isa()
    log.info("tick kernel: %s", path, extra=extra)
