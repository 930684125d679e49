"""Verdicts from consecutive results: the threshold rules, vectorised."""

from __future__ import annotations

import numpy as np
import pytest
from healthplane.checker.thresholds import Verdicts
from healthplane.proto.codec import HEALTHY, UNHEALTHY, UNKNOWN


def run(threshold: int, results: str) -> list[int]:
    """Feed 'ok'/'fail' as a string of + and -; return the state after each."""
    v = Verdicts(np.array([threshold]))
    out = []
    for r in results:
        v.apply(np.array([0]), np.array([r == "+"]))
        out.append(int(v.state[0]))
    return out


U, H, D = UNKNOWN, HEALTHY, UNHEALTHY


@pytest.mark.parametrize("threshold, results, states", [
    (3, "+", [H]),                                   # healthy after the first success
    (3, "--", [U, U]),                               # unknown before either
    (3, "---", [U, U, D]),                           # unhealthy after threshold failures
    (3, "+--", [H, H, H]),
    (3, "+---", [H, H, H, D]),                       # threshold failures flip
    (3, "+--+---", [H, H, H, H, H, H, D]),           # a success resets the failure run
    (3, "---++", [U, U, D, D, D]),
    (3, "---+++", [U, U, D, D, D, H]),               # as many successes flip back
    (3, "---++-+++", [U, U, D, D, D, D, D, D, H]),
    (1, "-+-", [D, H, D]),
    (2, "--++--", [U, D, D, H, H, D]),
])
def test_transitions(threshold, results, states):
    assert run(threshold, results) == states


def test_vectorised_batch_matches_one_by_one():
    rng = np.random.default_rng(3)
    n, steps = 150, 30
    thr = rng.integers(1, 11, size=n)
    results = rng.random((steps, n)) < 0.6
    batch = Verdicts(thr)
    single = [Verdicts(thr[i:i + 1]) for i in range(n)]
    for s in range(steps):
        batch.apply(np.arange(n), results[s])
        for i in range(n):
            single[i].apply(np.array([0]), results[s, i:i + 1])
    assert np.array_equal(batch.state, [v.state[0] for v in single])


def test_batch_with_repeated_index_applies_in_order():
    v = Verdicts(np.array([2, 2]))
    v.apply(np.array([0, 1, 0, 0, 0]), np.array([True, False, False, False, True]))
    assert v.state.tolist() == [UNHEALTHY, UNKNOWN]
    assert v.ok_run.tolist() == [1, 0]


def run_rise(fall: int, rise: int, results: str) -> list[int]:
    v = Verdicts(np.array([fall]), np.array([rise]))
    out = []
    for r in results:
        v.apply(np.array([0]), np.array([r == "+"]))
        out.append(int(v.state[0]))
    return out


@pytest.mark.parametrize("fall, rise, results, states", [
    (1, 3, "+-++-+++", [H, D, D, D, D, D, D, H]),   # rise 3: three successes to come back
    (3, 1, "+---+", [H, H, H, D, H]),               # rise 1: one success is enough
    (2, 2, "+--++", [H, H, D, D, H]),               # the default: the same both ways
    (2, 3, "+", [H]),                               # from unknown one success still does
])
def test_rise_and_fall(fall, rise, results, states):
    assert run_rise(fall, rise, results) == states


def test_reset_forgets_the_verdict_and_its_runs():
    v = Verdicts(np.array([2, 2]))
    v.apply(np.array([0, 1]), np.array([True, True]))
    v.apply(np.array([0, 1]), np.array([False, False]))
    v.reset(np.array([0]))
    assert v.state.tolist() == [U, H]
    v.apply(np.array([0, 1]), np.array([False, False]))
    # Row 0 rebuilt from one new failure (unknown); row 1 hit its threshold.
    assert v.state.tolist() == [U, D]
