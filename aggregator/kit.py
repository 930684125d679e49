"""The seam between the aggregator server and the vectorised tick engine.

The server never counts votes itself: slots, the tick and the registry remap
come from :mod:`aggregator.tick` and :mod:`aggregator.remap`. This module is
the one place that knows their shapes, so the rest of the server talks to an
:class:`EngineKit` and tests can hand in the same interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from proto.config.model import Fleet, Registry


class TickResultLike(Protocol):
    """What the server reads from one tick (see aggregator.tick.TickResult)."""

    states: bytes                   # final 2-bit health snapshot, wire layout
    healthy_votes: np.ndarray       # per check, fresh healthy votes
    reporting_votes: np.ndarray     # per check, fresh healthy + unhealthy votes
    status: np.ndarray              # per check, final status 0..2
    last_change_unix_ms: np.ndarray  # per check, 0 when never changed
    changed: Any                    # count (int) or per-check mask of changes this tick


Remap = Callable[[bytes], bytes]


@dataclass(frozen=True)
class EngineKit:
    """Factories for the tick engine's pieces.

    ``new_slots(registry, fleet)`` makes a slot matrix with one row per
    ``fleet.checker_ids`` entry; ``write(slots, row, payload)`` overwrites a
    row; ``row(slots, row)`` returns a row's payload bytes (for per-checker
    detail); ``new_engine(registry, fleet)`` makes an object whose
    ``compute(slots, fresh, now_unix_ms)`` returns a :class:`TickResultLike`;
    ``build_remap(old_ids, registry)`` returns a function turning a payload on
    the old registry into one on ``registry``.
    """

    new_slots: Callable[[Registry, Fleet], Any]
    write: Callable[[Any, int, bytes], None]
    row: Callable[[Any, int], bytes | memoryview | np.ndarray]
    new_engine: Callable[[Registry, Fleet], Any]
    build_remap: Callable[[Sequence[str], Registry], Remap]


def changed_count(changed: Any) -> int:
    """Number of checks that changed state this tick, whatever form the engine gives."""
    if isinstance(changed, (int, np.integer)):
        return int(changed)
    arr = np.asarray(changed)
    return int(np.count_nonzero(arr)) if arr.dtype == bool else int(arr.size)


def default_kit() -> EngineKit:
    """The production kit, built on aggregator.tick and aggregator.remap."""
    from aggregator import remap as remap_mod
    from aggregator import tick as tick_mod

    def new_slots(registry: Registry, fleet: Fleet) -> Any:
        return tick_mod.SlotMatrix(len(fleet.checker_ids), registry.check_count)

    def write(slots: Any, row: int, payload: bytes) -> None:
        slots.write(row, payload)

    def row(slots: Any, r: int) -> Any:
        return slots.row(r)

    def new_engine(registry: Registry, fleet: Fleet) -> Any:
        return tick_mod.TickEngine(registry, fleet)

    def build_remap(old_ids: Sequence[str], registry: Registry) -> Remap:
        mapping = remap_mod.build_remap(tuple(old_ids), registry)
        return mapping if callable(mapping) else mapping.apply

    return EngineKit(new_slots, write, row, new_engine, build_remap)
