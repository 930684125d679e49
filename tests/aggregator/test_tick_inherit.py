"""A new engine for a new registry takes over the old one's memory by check id."""

from __future__ import annotations

import numpy as np
import pytest
from healthplane.aggregator.remap import build_remap
from healthplane.aggregator.tick import TickEngine
from healthplane.aggregator.tick_memory import carry, from_check_order
from healthplane.aggregator.votes import SlotMatrix, to_check_order
from healthplane.proto import codec

from tests.aggregator.tick_helpers import Rig, calculated, fleet, probe, registry

# Every engine here runs on both tick paths (numpy and compiled).
pytestmark = pytest.mark.usefixtures("tick_path")

H, U, N = codec.HEALTHY, codec.UNHEALTHY, codec.UNKNOWN


class Adopting(Rig):
    """A Rig that can switch to a new registry the way the aggregator does."""

    def adopt(self, reg, *, inherit: bool = True, **fleet_kw: object) -> None:
        old = self.engine
        self.registry = reg
        if fleet_kw:
            self.fleet = fleet(len(self.fleet.checker_ids), **fleet_kw)
        self.engine = TickEngine(reg, self.fleet)
        if inherit:
            self.engine.inherit(old)
        self.slots = self.engine.new_slots()


def down_then_quiet() -> tuple[Adopting, int]:
    """b went down at a known time; then its checker went quiet."""
    rig = Adopting(registry([probe("a"), probe("b"), probe("gone")]), 1)
    rig.set(0, [H, H, U])
    rig.tick()
    rig.set(0, [H, U, U])
    went_down = rig.tick()
    assert went_down.changed == 1
    down_at = rig.now
    assert rig.tick(fresh=[False]).status.tolist() == [H, U, U]
    return rig, down_at


def test_a_check_down_by_votes_stays_down_when_a_check_is_added_before_it() -> None:
    rig, down_at = down_then_quiet()
    rig.adopt(registry([probe("added"), probe("a"), probe("b")], version="v2"))
    res = rig.tick(fresh=[False])
    # "added" was never seen: healthy; b keeps its last known status, though
    # it moved from index 1 to 2 and nobody votes.
    assert res.status.tolist() == [H, H, U]
    assert res.last_change_unix_ms.tolist() == [0, 0, down_at]
    assert res.changed == 0
    assert rig.engine.memory().ids == ("added", "a", "b")   # "gone" is gone


def test_without_inherit_the_dead_check_would_come_back() -> None:
    rig, _ = down_then_quiet()
    rig.adopt(registry([probe("added"), probe("a"), probe("b")], version="v2"), inherit=False)
    res = rig.tick(fresh=[False])
    assert res.status.tolist() == [H, H, H]
    assert res.last_change_unix_ms.tolist() == [0, 0, 0]


def test_a_new_checks_first_status_is_no_change_and_later_ones_are() -> None:
    rig, down_at = down_then_quiet()
    rig.adopt(registry([probe("added"), probe("a"), probe("b")], version="v2"))
    rig.set(0, [U, H, H])
    first = rig.tick()
    # b coming back up is a change; "added" getting its first status is not.
    assert first.status.tolist() == [U, H, H]
    assert first.changed == 1
    assert first.last_change_unix_ms.tolist() == [0, 0, rig.now]
    rig.set(0, [H, H, H])
    second = rig.tick()
    assert second.changed == 1
    assert second.last_change_of([0]).tolist() == [rig.now]


def test_memory_survives_two_registry_changes_between_ticks() -> None:
    rig, down_at = down_then_quiet()
    rig.adopt(registry([probe("added"), probe("a"), probe("b")], version="v2"))
    rig.adopt(registry([probe("b"), probe("z")], version="v3"))   # no tick in between
    res = rig.tick(fresh=[False])
    assert res.status.tolist() == [U, H]
    assert res.last_change_unix_ms.tolist() == [down_at, 0]


def test_a_switched_inversion_flips_the_last_known_status() -> None:
    rig, _ = down_then_quiet()
    rig.adopt(registry([probe("a", inverted=True), probe("b", inverted=True)], version="v2"))
    res = rig.tick(fresh=[False])
    # The last votes said a healthy, b unhealthy; inverted now, as if just voted.
    assert res.status.tolist() == [U, H]
    assert res.changed == 2


def test_a_check_that_took_no_votes_starts_as_never_seen() -> None:
    checks = [probe("a"), probe("b", disabled=True), calculated("c", ["a"], 1)]
    rig = Adopting(registry(checks), 1, unknown_as="last_known")
    rig.set(0, [U, U, N])
    assert rig.tick().status.tolist() == [U, H, U]
    rig.adopt(registry([probe("a"), probe("b"), probe("c")], version="v2"))
    assert rig.tick(fresh=[False]).status.tolist() == [U, H, H]


def test_a_vote_rule_change_on_the_same_registry_keeps_times() -> None:
    rig, down_at = down_then_quiet()
    rig.adopt(rig.registry, healthy_fraction=0.5)
    res = rig.tick(fresh=[False])
    assert res.status.tolist() == [H, U, U]
    assert res.last_change_unix_ms.tolist() == [0, down_at, 0]


def test_from_unknown_as_healthy_to_last_known_nothing_was_known() -> None:
    rig = Adopting(registry([probe("a"), probe("b")]), 1, unknown_as="healthy")
    rig.set(0, [H, H])
    rig.tick()
    rig.set(0, [H, U])
    rig.tick()
    down_at = rig.now
    rig.adopt(registry([probe("b"), probe("a")], version="v2"), unknown_as="last_known")
    res = rig.tick(fresh=[False])
    # An engine under "healthy" keeps no last known vote: b is never seen,
    # so healthy, and that is a change from the unhealthy it last published.
    assert res.status.tolist() == [H, H]
    assert res.changed == 1
    assert res.last_change_unix_ms.tolist() == [rig.now, 0]
    assert down_at < rig.now


def test_inherit_after_the_first_tick_is_refused() -> None:
    rig, _ = down_then_quiet()
    with pytest.raises(RuntimeError, match="before the engine's first tick"):
        rig.engine.inherit(TickEngine(rig.registry, rig.fleet))


def test_an_engine_that_never_ticked_hands_over_nothing() -> None:
    old = TickEngine(registry(2), fleet(1))
    new = TickEngine(registry(3, version="v2"), fleet(1))
    new.inherit(old)
    assert new.memory() is None
    res = new.compute(new.new_slots(), np.zeros(1, bool), 5_000)
    assert res.status.tolist() == [H, H, H] and res.changed == 0


@pytest.mark.parametrize("use_remap_indices", [False, True])
def test_many_checks_shuffled_match_a_per_id_reference(use_remap_indices: bool) -> None:
    """Across slot geometries (5,000 -> 6,000 checks, shuffled), every id keeps its own."""
    rng = np.random.default_rng(7)
    old_ids = [f"c{i}" for i in range(5_000)]
    rig = Adopting(registry([probe(c) for c in old_ids]), 2)
    for _ in range(4):
        rig.set(0, rng.integers(1, 3, len(old_ids)).tolist())
        rig.set(1, rng.integers(0, 3, len(old_ids)).tolist())
        last = rig.tick()
    quiet = rig.tick(fresh=[False, False])
    want_status = dict(zip(old_ids, quiet.status.tolist(), strict=True))
    want_change = dict(zip(old_ids, quiet.last_change_unix_ms.tolist(), strict=True))
    assert last.changed > 0 and len(set(want_change.values())) > 2

    kept = rng.choice(old_ids, 4_000, replace=False).tolist()
    new_ids = kept + [f"n{i}" for i in range(2_000)]
    rng.shuffle(new_ids)
    new_reg = registry([probe(c) for c in new_ids], version="v2")
    old_engine = rig.engine
    rig.adopt(new_reg, inherit=False)
    source = build_remap(old_ids, new_reg).source if use_remap_indices else None
    rig.engine.inherit(old_engine, source)
    res = rig.tick(fresh=[False, False])
    assert res.status.tolist() == [want_status.get(c, H) for c in new_ids]
    assert res.last_change_unix_ms.tolist() == [want_change.get(c, 0) for c in new_ids]
    assert res.changed == 0


def test_more_checkers_for_the_same_engine_keep_its_memory() -> None:
    """A fleet-only change keeps the engine; its new slot matrix must not wipe it."""
    rig, down_at = down_then_quiet()
    for rows in (4, 7, 1):
        slots = SlotMatrix(rows, 3)
        res = rig.engine.compute(slots, np.zeros(rows, bool), rig.now + rows)
        assert res.status.tolist() == [H, U, U]
        assert res.last_change_unix_ms.tolist() == [0, down_at, 0]
        assert res.changed == 0


def test_moved_lanes_for_the_same_engine_keep_its_memory() -> None:
    """Another chunk size moves every lane; the memory moves with the checks."""
    rig = Rig(registry(5_000), 1)
    rng = np.random.default_rng(3)
    rig.set(0, rng.integers(1, 3, 5_000).tolist())
    rig.tick()
    rig.set(0, rng.integers(1, 3, 5_000).tolist())
    before = rig.tick()
    status, times = before.status.copy(), before.last_change_unix_ms.copy()
    slots = SlotMatrix(1, 5_000, chunk_words=16)     # 160 words per row, not 157
    assert slots.lane_words != rig.slots.lane_words
    res = rig.engine.compute(slots, np.zeros(1, bool), rig.now + 1_000)
    assert np.array_equal(res.status, status)
    assert np.array_equal(res.last_change_unix_ms, times)
    assert res.changed == 0


@pytest.mark.parametrize("between, last, expect", [
    (True, True, H),     # inverted once, between ticks: flipped once
    (True, False, U),    # inverted, then back before any tick: as voted
    (False, True, H),
])
def test_inversion_switched_across_two_changes_without_a_tick(between: bool, last: bool,
                                                              expect: int) -> None:
    rig, _ = down_then_quiet()
    rig.adopt(registry([probe("b", inverted=between)], version="v2"))
    rig.adopt(registry([probe("x"), probe("b", inverted=last)], version="v3"))
    assert rig.tick(fresh=[False]).status.tolist() == [H, expect]


def test_memory_from_check_order_is_the_same_memory() -> None:
    """A memory built from per-check arrays (as read back from a file) lays out like the tick's."""
    rig, down_at = down_then_quiet()
    mem = rig.engine.memory()
    n = rig.registry.check_count
    rebuilt = from_check_order(
        mem.ids, mem.lane_words,
        status=to_check_order(mem.status, n),
        last_known=None,
        last_change_unix_ms=to_check_order(mem.last_change_unix_ms(), n),
        established=None,
        inverted=to_check_order(mem.inverted, n),
        novote=to_check_order(mem.novote, n))
    assert np.array_equal(rebuilt.status, mem.status)
    assert np.array_equal(rebuilt.last_change_unix_ms(), mem.last_change_unix_ms())
    assert np.array_equal(rebuilt.novote, mem.novote)
    moved = carry(rebuilt, ("b", "new"), mem.lane_words)
    assert to_check_order(moved.status, 2).tolist() == [U, 0]
    assert to_check_order(moved.last_change_unix_ms(), 2).tolist() == [down_at, 0]
