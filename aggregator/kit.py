"""The seam between the aggregator server and the vectorised tick engine.

The server never counts votes itself: slots, the tick and the registry remap
come from :mod:`healthplane.aggregator.tick` and :mod:`healthplane.aggregator.remap`. This module is
the one place that knows their shapes, so the rest of the server talks to an
:class:`EngineKit` and tests can hand in the same interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from healthplane.proto.config.model import Fleet, Registry


class TickResultLike(Protocol):
    """What the server reads from one tick (see healthplane.aggregator.tick.TickResult).

    The per-index accessors are cheap; the engine builds whole per-check
    arrays lazily, and the server never asks for them.
    """

    states: bytes                   # final 2-bit health snapshot, wire layout
    changed: int                    # checks whose status changed this tick

    def status_of(self, indices: np.ndarray) -> np.ndarray: ...
    def votes(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def last_change_of(self, indices: np.ndarray) -> np.ndarray: ...
    def status_counts(self) -> np.ndarray: ...


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
    the old registry into one on ``registry``; ``inherit(engine, old_engine,
    remap)``, when set, hands a new engine the per-check memory (last known
    status, last change time) of the one it replaces, by check id, before its
    first tick (remap: the one built for the same change, or None when the
    registry stayed the same).
    """

    new_slots: Callable[[Registry, Fleet], Any]
    write: Callable[[Any, int, bytes], None]
    row: Callable[[Any, int], Any]
    votes_of: Callable[[Any, int], np.ndarray]
    new_engine: Callable[[Registry, Fleet], Any]
    build_remap: Callable[[Sequence[str], Registry], Remap]
    inherit: Callable[[Any, Any, Remap | None], None] | None = None


def default_kit() -> EngineKit:
    """The production kit, built on aggregator.tick and aggregator.remap."""
    from healthplane.aggregator import remap as remap_mod
    from healthplane.aggregator import tick as tick_mod

    def new_slots(registry: Registry, fleet: Fleet) -> Any:
        return tick_mod.SlotMatrix(len(fleet.checker_ids), registry.check_count)

    def votes_of(slots: Any, check_index: int) -> np.ndarray:
        return slots.votes_of(check_index)

    def write(slots: Any, row: int, payload: bytes) -> None:
        slots.write(row, payload)

    def row(slots: Any, r: int) -> Any:
        return slots.row(r)

    def new_engine(registry: Registry, fleet: Fleet) -> Any:
        return tick_mod.TickEngine(registry, fleet)

    def build_remap(old_ids: Sequence[str], registry: Registry) -> Remap:
        return remap_mod.build_remap(tuple(old_ids), registry)

    def inherit(engine: Any, old_engine: Any, remap: Remap | None) -> None:
        # The payload remap already mapped the ids: reuse its indices.
        engine.inherit(old_engine, getattr(remap, "source", None))

    return EngineKit(new_slots, write, row, votes_of, new_engine, build_remap, inherit)
