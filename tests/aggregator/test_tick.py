"""The tick's rules: the vote threshold, freshness, unknown_as, inversion,
disabling, calculated checks, change tracking and the published layout."""

from __future__ import annotations

import numpy as np
import pytest
from healthplane.aggregator.calculated import calculated_levels
from healthplane.aggregator.tick import TickEngine
from healthplane.aggregator.tick_layout import exact_fraction
from healthplane.proto import codec

from tests.aggregator.tick_helpers import Rig, calculated, fleet, probe, registry

# Every engine here runs on both tick paths (numpy and compiled).
pytestmark = pytest.mark.usefixtures("tick_path")

H, U, N = codec.HEALTHY, codec.UNHEALTHY, codec.UNKNOWN


def test_exactly_the_fraction_is_not_healthy() -> None:
    rig = Rig(registry(2), 50)
    # Check 0: 9 of 50 healthy (exactly 18 %). Check 1: 10 of 50.
    for r in range(50):
        rig.set(r, [H if r < 9 else U, H if r < 10 else U])
    res = rig.tick()
    assert res.status.tolist() == [U, H]
    assert res.healthy_votes.tolist() == [9, 10]
    assert res.reporting_votes.tolist() == [50, 50]


def test_fraction_is_read_as_written() -> None:
    assert exact_fraction(0.18) == exact_fraction(18 / 100) and str(exact_fraction(0.18)) == "9/50"


def test_half_split_with_fraction_one_half_is_unhealthy() -> None:
    rig = Rig(registry(1), 2, healthy_fraction=0.5)
    rig.set(0, [H])
    rig.set(1, [U])
    assert rig.tick().status.tolist() == [U]


def test_fraction_zero_needs_one_healthy_vote() -> None:
    rig = Rig(registry(2), 3, healthy_fraction=0.0)
    rig.set(0, [H, U])
    rig.set(1, [U, U])
    rig.set(2, [U, U])
    assert rig.tick().status.tolist() == [H, U]


def test_unknown_votes_do_not_report() -> None:
    rig = Rig(registry(1), 10)
    rig.set(0, [H])
    for r in range(1, 5):
        rig.set(r, [U])          # 1 healthy of 5 reporting: 20 % > 18 %
    res = rig.tick()             # rows 5..9 never written: unknown
    assert res.status.tolist() == [H]
    assert (res.healthy_votes[0], res.reporting_votes[0]) == (1, 5)


def test_no_fresh_votes_is_unknown_and_never_seen_is_healthy() -> None:
    rig = Rig(registry(3), 4)
    res = rig.tick(fresh=[False] * 4)
    assert res.status.tolist() == [H, H, H]
    assert res.reporting_votes.tolist() == [0, 0, 0]
    assert codec.decode(res.states, 3).tolist() == [H, H, H]


def test_stale_slots_do_not_vote() -> None:
    rig = Rig(registry(2), 3)
    rig.set(0, [U, U])
    rig.set(1, [U, U])
    rig.set(2, [H, N])
    res = rig.tick(fresh=[False, False, True])
    assert res.status.tolist() == [H, H]          # check 1: unknown -> never seen -> healthy
    assert res.healthy_votes.tolist() == [1, 0]
    assert res.reporting_votes.tolist() == [1, 0]
    res = rig.tick(fresh=[True, True, True])
    assert res.status.tolist() == [H, U]          # 1 of 3 is 33 % > 18 %


@pytest.mark.parametrize("vote, expect", [(H, H), (U, U)])
def test_one_checker_decides_alone(vote: int, expect: int) -> None:
    rig = Rig(registry(1), 1)
    rig.set(0, [vote])
    res = rig.tick()
    assert res.status.tolist() == [expect]
    assert res.reporting_votes.tolist() == [1]


def test_zero_checkers_fleet() -> None:
    rig = Rig(registry(2), 0)
    res = rig.tick()
    assert res.status.tolist() == [H, H]


@pytest.mark.parametrize("mode, expect", [("healthy", H), ("unhealthy", U), ("last_known", U)])
def test_unknown_as(mode: str, expect: int) -> None:
    rig = Rig(registry(2), 1, unknown_as=mode)
    rig.set(0, [U, N])
    first = rig.tick()
    assert first.status[0] == U
    # Check 1 was never seen: healthy under last_known, else what unknown_as says.
    assert first.status[1] == (H if mode == "last_known" else expect)
    later = rig.tick(fresh=[False])
    assert later.status[0] == expect
    assert later.reporting_votes[0] == 0


def test_last_known_follows_the_latest_vote() -> None:
    rig = Rig(registry(1), 1)
    rig.set(0, [U])
    rig.tick()
    rig.set(0, [H])
    rig.tick()
    assert rig.tick(fresh=[False]).status.tolist() == [H]
    rig.set(0, [U])
    rig.tick()
    assert rig.tick(fresh=[False]).status.tolist() == [U]


def test_inverted_flips_the_vote() -> None:
    rig = Rig(registry([probe("a", inverted=True), probe("b", inverted=True)]), 1)
    rig.set(0, [H, U])
    assert rig.tick().status.tolist() == [U, H]


@pytest.mark.parametrize("mode, expect", [("healthy", H), ("unhealthy", U)])
def test_inverted_unknown_takes_unknown_as_as_is(mode: str, expect: int) -> None:
    rig = Rig(registry([probe("a", inverted=True)]), 1, unknown_as=mode)
    assert rig.tick(fresh=[False]).status.tolist() == [expect]


def test_inverted_last_known_is_the_inverted_status() -> None:
    rig = Rig(registry([probe("a", inverted=True)]), 1)
    assert rig.tick(fresh=[False]).status.tolist() == [H]     # never seen: healthy
    rig.set(0, [H])
    assert rig.tick().status.tolist() == [U]
    assert rig.tick(fresh=[False]).status.tolist() == [U]     # last known, already inverted


def test_disabled_is_always_healthy() -> None:
    checks = [probe("a", disabled=True), probe("b", disabled=True, inverted=True),
              probe("c", disabled=True)]
    rig = Rig(registry(checks), 2, unknown_as="unhealthy")
    rig.set(0, [U, H, N])
    rig.set(1, [U, H, N])
    assert rig.tick().status.tolist() == [H, H, H]


def calc_registry() -> list:
    return [
        probe("a"), probe("b"), probe("c"),
        calculated("outer", ["inner", "c"], 2),       # listed before its child
        calculated("inner", ["a", "b"], 1),
        calculated("all3", ["a", "b", "c"], 3),
        calculated("two", ["a", "b", "c"], 2),
        calculated("zero", ["b"], 0),
        calculated("over", ["a", "c"], 3),
        calculated("inv", ["a"], 1, inverted=True),
        calculated("off", ["b"], 1, disabled=True),
        calculated("none", [], 1),
    ]


def test_calculated_checks() -> None:
    reg = registry(calc_registry())
    rig = Rig(reg, 1)
    # a healthy, b unhealthy, c healthy; the checker also "votes" unhealthy
    # for every calculated check, which must be ignored.
    rig.set(0, [H, U, H] + [U] * 9)
    res = rig.tick()
    got = dict(zip(reg.ids, res.status.tolist(), strict=True))
    assert got == {"a": H, "b": U, "c": H, "outer": H, "inner": H, "all3": U, "two": H,
                   "zero": H, "over": U, "inv": U, "off": H, "none": U}
    assert res.reporting_votes[reg.ids.index("outer")] == 0


def test_nested_calculated_follows_children_changes() -> None:
    reg = registry(calc_registry())
    rig = Rig(reg, 1)
    rig.set(0, [U, U, H] + [N] * 9)
    got = dict(zip(reg.ids, rig.tick().status.tolist(), strict=True))
    assert (got["inner"], got["outer"], got["zero"]) == (U, U, H)


def test_calculated_sees_children_after_their_rules() -> None:
    checks = [probe("a", disabled=True), probe("b", inverted=True), probe("c"),
              calculated("all", ["a", "b", "c"], 3)]
    rig = Rig(registry(checks), 1, unknown_as="healthy")
    rig.set(0, [U, U, N])      # a disabled -> H, b inverted -> H, c unknown -> H
    assert rig.tick().status.tolist() == [H, H, H, H]


def test_calculated_levels_order_and_errors() -> None:
    reg = registry(calc_registry())
    levels = [[reg.ids[i] for i in lv] for lv in calculated_levels(reg)]
    assert levels[1] == ["outer"] and "inner" in levels[0]
    cyc = registry([probe("a"), calculated("x", ["y"], 1), calculated("y", ["x", "a"], 1)])
    with pytest.raises(ValueError, match="cycle"):
        TickEngine(cyc, fleet(1))
    with pytest.raises(ValueError, match="unknown child 'nope'"):
        TickEngine(registry([calculated("x", ["nope"], 1)]), fleet(1))


def test_changes_and_last_change() -> None:
    rig = Rig(registry(3), 1)
    rig.set(0, [H, U, H])
    first = rig.tick()
    assert first.changed == 0
    assert first.last_change_unix_ms.tolist() == [0, 0, 0]
    rig.set(0, [U, U, H])
    second = rig.tick()
    assert second.changed == 1
    assert second.last_change_unix_ms.tolist() == [rig.now, 0, 0]
    third = rig.tick()
    assert third.changed == 0
    assert third.last_change_unix_ms.tolist() == [second.generated_unix_ms, 0, 0]
    # The previous result still reads its own times; older ones raise
    # instead of giving a newer tick's; statuses stay readable.
    assert second.last_change_of([0, 1]).tolist() == [second.generated_unix_ms, 0]
    with pytest.raises(RuntimeError, match="reused two ticks later"):
        first.last_change_of([0])
    assert first.status.tolist() == [H, U, H]
    rig.set(0, [H, U, H])
    fourth = rig.tick()
    assert fourth.changed == 1
    assert fourth.last_change_unix_ms.tolist() == [fourth.generated_unix_ms, 0, 0]
    assert third.last_change_unix_ms.tolist() == [second.generated_unix_ms, 0, 0]  # read before


def test_published_layout_and_accessors() -> None:
    n = 37
    rng = np.random.default_rng(7)
    reg = registry(n)
    rig = Rig(reg, 5)
    for r in range(5):
        rig.set(r, rng.integers(0, 3, n).tolist())
    res = rig.tick()
    states = codec.decode(res.states, n)          # validates length and padding
    assert len(res.states) == codec.packed_size(n)
    assert states.tolist() == res.status.tolist()
    assert N not in states.tolist()
    idx = [0, 36, 5, 5]
    hv, rv = res.votes(idx)
    assert hv.tolist() == res.healthy_votes[idx].tolist()
    assert rv.tolist() == res.reporting_votes[idx].tolist()
    assert res.status_of(idx).tolist() == res.status[idx].tolist()
    assert res.last_change_of(idx).tolist() == res.last_change_unix_ms[idx].tolist()
    counts = res.status_counts()
    assert counts.tolist() == np.bincount(res.status, minlength=4).tolist()
    with pytest.raises(IndexError):
        res.votes([n])


def test_engine_rejects_mismatched_slots() -> None:
    rig = Rig(registry(3), 2)
    other = Rig(registry(4), 2)
    with pytest.raises(ValueError, match="checks"):
        rig.engine.compute(other.slots, np.ones(2, bool), 0)
    with pytest.raises(ValueError, match="one entry per row"):
        rig.engine.compute(rig.slots, np.ones(3, bool), 0)
