"""backoff(): capped exponential, full jitter, never zero; a pure function."""

from __future__ import annotations

import random

import pytest

from healthplane.runtime.backoff import MIN_DELAY, backoff


class _Fixed(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_bounds_with_a_seeded_rng():
    rng = random.Random(7)
    for attempt in range(40):
        upper = min(5.0, 0.1 * 2**attempt)
        values = [backoff(attempt, 0.1, 5.0, rng) for _ in range(200)]
        assert all(min(MIN_DELAY, upper) <= v <= upper for v in values), attempt


def test_the_extremes_of_the_draw():
    for attempt in range(40):
        upper = min(5.0, 0.1 * 2**attempt)
        assert backoff(attempt, 0.1, 5.0, _Fixed(0.0)) == upper         # top of the range
        assert backoff(attempt, 0.1, 5.0, _Fixed(1.0 - 2**-53)) == MIN_DELAY  # floor, not 0


def test_full_jitter_spreads_over_the_whole_range():
    rng = random.Random(11)
    late = [backoff(10, 0.1, 5.0, rng) for _ in range(2000)]
    assert min(late) < 0.5 and max(late) > 4.5


def test_a_cap_below_the_floor_wins_and_huge_attempts_stay_capped():
    # The range itself lies below the floor: the top of the range, never more.
    assert backoff(0, 0.001, 0.004, _Fixed(0.999)) == 0.001
    assert backoff(0, 1.0, 0.004, _Fixed(0.999)) == 0.004
    assert backoff(10**9, 0.2, 10.0, _Fixed(0.0)) == 10.0
    assert backoff(-3, 0.2, 10.0, _Fixed(0.0)) == 0.2


def test_same_seed_same_delays():
    a = [backoff(i, 0.2, 10.0, random.Random(3)) for i in range(10)]
    b = [backoff(i, 0.2, 10.0, random.Random(3)) for i in range(10)]
    assert a == b


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (1, 0), (-1, 1), (float("nan"), 1)])
def test_bad_parameters_are_refused(base: float, cap: float):
    with pytest.raises(ValueError):
        backoff(0, base, cap, random.Random(1))
