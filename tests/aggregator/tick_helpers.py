"""Builders shared by the tick engine tests: registries, fleets, filled slots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from healthplane.aggregator.tick import TickEngine
from healthplane.aggregator.tick_result import TickResult
from healthplane.aggregator.votes import SlotMatrix
from healthplane.proto import codec
from healthplane.proto.config.model import Check, Fleet, Registry


def probe(cid: str, **kw: object) -> Check:
    return Check(id=cid, type="tcp", host="192.0.2.1", port=80, **kw)  # type: ignore[arg-type]


def calculated(cid: str, children: Sequence[str], threshold: int, **kw: object) -> Check:
    return Check(id=cid, type="calculated", children=tuple(children),  # type: ignore[arg-type]
                 healthy_threshold=threshold, **kw)


def registry(checks: Sequence[Check] | int, version: str = "v1") -> Registry:
    if isinstance(checks, int):
        checks = [probe(f"c{i}") for i in range(checks)]
    return Registry(tuple(checks), version)


def fleet(n_checkers: int, **kw: object) -> Fleet:
    return Fleet(regions={"r1": tuple(f"k{i}" for i in range(n_checkers))},
                 aggregators=("127.0.0.1:7000",), **kw)  # type: ignore[arg-type]


class Rig:
    """An engine with its slots; votes given as one list of states per checker."""

    def __init__(self, reg: Registry, n_checkers: int, **fleet_kw: object) -> None:
        self.registry = reg
        self.fleet = fleet(n_checkers, **fleet_kw)
        self.engine = TickEngine(reg, self.fleet)
        self.slots: SlotMatrix = self.engine.new_slots()
        self.now = 1_000

    def set(self, row: int, states: Sequence[int]) -> None:
        self.slots.write(row, codec.encode(states))

    def tick(self, fresh: Sequence[bool] | None = None) -> TickResult:
        n = self.fleet.checker_ids
        mask = np.ones(len(n), bool) if fresh is None else np.asarray(fresh, bool)
        self.now += 1_000
        return self.engine.compute(self.slots, mask, self.now)
