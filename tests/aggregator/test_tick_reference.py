"""The engine against a plain per-check reference of the rules, over several
ticks of random registries (flags, calculated checks), votes and staleness."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from healthplane.aggregator.calculated import calculated_levels
from healthplane.aggregator.tick import TickEngine
from healthplane.proto import codec
from healthplane.proto.config.model import Check, Fleet, Registry
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.aggregator.tick_helpers import fleet, probe

# Every engine here runs on both tick paths (numpy and compiled).
pytestmark = pytest.mark.usefixtures("tick_path")

H, U = codec.HEALTHY, codec.UNHEALTHY


class Reference:
    """The rules of aggregator.tick, one check at a time."""

    def __init__(self, reg: Registry, fraction: float, unknown_as: str,
                 fl: Fleet | None = None, row_regions: list[str] | None = None) -> None:
        self.reg, self.unknown_as = reg, unknown_as
        self.fleet = fl
        self.row_regions = row_regions
        self.fraction = Fraction(repr(fraction))
        self.last = [H] * reg.check_count
        self.levels = calculated_levels(reg)
        self.index = reg.index_of()

    def tick(self, states: np.ndarray, fresh: np.ndarray) -> list[int]:
        out = [0] * self.reg.check_count
        live = states[fresh]
        for i, c in enumerate(self.reg.checks):
            if c.type == "calculated":
                continue
            h = int((live[:, i] == H).sum())
            r = int((live[:, i] != 0).sum())
            quorate = r > 0
            if self.fleet is not None:
                regions = {self.row_regions[k] for k in range(len(states))
                           if fresh[k] and states[k, i] != 0}
                quorate = (r >= (c.min_votes or self.fleet.min_votes)
                           and len(regions) >= (c.min_regions or self.fleet.min_regions))
            if c.disabled:
                out[i] = H
            elif not quorate:
                out[i] = {"healthy": H, "unhealthy": U}.get(self.unknown_as, self.last[i])
            else:
                s = H if h > self.fraction * r else U
                if c.inverted:
                    s = U if s == H else H
                out[i] = self.last[i] = s
        for level in self.levels:
            for i in level:
                c = self.reg.checks[i]
                ok = sum(out[self.index[ch]] == H for ch in c.children)
                s = H if ok >= c.healthy_threshold else U
                if c.inverted:
                    s = U if s == H else H
                out[i] = H if c.disabled else s
        return out


@st.composite
def scenario(draw: st.DrawFn) -> tuple:
    n_probe = draw(st.integers(1, 40))
    n_calc = draw(st.integers(0, 6))
    checks: list[Check] = []
    for i in range(n_probe):
        checks.append(probe(f"p{i}", inverted=draw(st.booleans()), disabled=draw(st.booleans())))
    for k in range(n_calc):
        # Children among probes and earlier calculated checks: never a cycle.
        pool = [f"p{i}" for i in range(n_probe)] + [f"k{j}" for j in range(k)]
        kids = draw(st.lists(st.sampled_from(pool), max_size=5, unique=True))
        checks.append(Check(id=f"k{k}", type="calculated", children=tuple(kids),
                            healthy_threshold=draw(st.integers(0, 6)),
                            inverted=draw(st.booleans()), disabled=draw(st.booleans())))
    order = draw(st.permutations(range(len(checks))))
    reg = Registry(tuple(checks[i] for i in order), "v")
    n_rows = draw(st.integers(0, 20))
    fraction = draw(st.sampled_from([0.0, 0.18, 0.25, 0.5, 0.9]))
    unknown_as = draw(st.sampled_from(["healthy", "unhealthy", "last_known"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return reg, n_rows, fraction, unknown_as, seed


@settings(max_examples=60, deadline=None)
@given(scenario())
def test_engine_matches_reference(case: tuple) -> None:
    reg, n_rows, fraction, unknown_as, seed = case
    rng = np.random.default_rng(seed)
    fl = fleet(n_rows, healthy_fraction=fraction, unknown_as=unknown_as)
    engine = TickEngine(reg, fl)
    slots = engine.new_slots()
    ref = Reference(reg, fraction, unknown_as)
    n = reg.check_count
    for t in range(4):
        states = rng.integers(0, 3, (n_rows, n)).astype(np.uint8)
        states[rng.random((n_rows, n)) < 0.4] = 0
        for r in range(n_rows):
            slots.write(r, codec.encode(states[r]))
        fresh = rng.random(n_rows) < 0.7
        res = engine.compute(slots, fresh, 1000 * (t + 1))
        want = ref.tick(states, fresh)
        assert res.status.tolist() == want, f"tick {t}"
        assert codec.decode(res.states, n).tolist() == want


@st.composite
def quorum_scenario(draw: st.DrawFn) -> tuple:
    n_rows = draw(st.integers(0, 12))
    names = ["ra", "rb", "rc"][:draw(st.integers(1, 3))]
    row_regions = [draw(st.sampled_from(names)) for _ in range(n_rows)]
    checks = [probe(f"p{i}", inverted=draw(st.booleans()), disabled=draw(st.booleans()),
                    min_votes=draw(st.one_of(st.none(), st.integers(1, 5))),
                    min_regions=draw(st.one_of(st.none(), st.integers(1, 3))))
              for i in range(draw(st.integers(1, 30)))]
    reg = Registry(tuple(checks), "v")
    regions = {n: tuple(f"k{k}" for k in range(n_rows) if row_regions[k] == n) for n in names}
    # Rows follow fleet.checker_ids: region by region.
    order = [k for n in names for k in range(n_rows) if row_regions[k] == n]
    fl = Fleet(regions=regions, aggregators=("127.0.0.1:7000",),
               healthy_fraction=draw(st.sampled_from([0.0, 0.18, 0.5])),
               unknown_as=draw(st.sampled_from(["healthy", "unhealthy", "last_known"])),
               min_votes=draw(st.integers(1, 4)), min_regions=draw(st.integers(1, 3)))
    return reg, fl, [row_regions[k] for k in order], draw(st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(quorum_scenario())
def test_engine_matches_reference_with_quorums(case: tuple) -> None:
    reg, fl, row_regions, seed = case
    rng = np.random.default_rng(seed)
    engine = TickEngine(reg, fl)
    slots = engine.new_slots()
    ref = Reference(reg, fl.healthy_fraction, fl.unknown_as, fl, row_regions)
    n, n_rows = reg.check_count, len(row_regions)
    for t in range(4):
        states = rng.integers(0, 3, (n_rows, n)).astype(np.uint8)
        states[rng.random((n_rows, n)) < 0.4] = 0
        for r in range(n_rows):
            slots.write(r, codec.encode(states[r]))
        fresh = rng.random(n_rows) < 0.7
        res = engine.compute(slots, fresh, 1000 * (t + 1))
        assert res.status.tolist() == ref.tick(states, fresh), f"tick {t}"
