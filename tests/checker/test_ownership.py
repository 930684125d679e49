"""Rendezvous ownership: deterministic, balanced, minimal movement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from healthplane.checker.ownership import owned_mask, owners, scores, stable_hash64
from healthplane.proto.config.model import Check

from tests.checker.helpers import make_fleet, make_registry, tcp_checks

CHECKERS = tuple(f"use1-{c}" for c in "abcdefgh")


def test_hash_is_stable_across_processes():
    code = "from healthplane.checker.ownership import stable_hash64; print(stable_hash64('a', 'b'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123"},
                         cwd=Path(__file__).resolve().parents[2])
    assert int(out.stdout) == stable_hash64("a", "b")
    assert stable_hash64("ab", "c") != stable_hash64("a", "bc")


def masks(n_checks: int, checkers: tuple[str, ...], k: int) -> dict[str, np.ndarray]:
    reg = make_registry(tcp_checks(n_checks))
    fleet = make_fleet({"r": checkers}, per_region=k)
    return {c: owned_mask(reg, fleet, c) for c in checkers}


def test_owned_mask_agrees_with_owners():
    m = masks(500, CHECKERS, 3)
    for i in range(500):
        assert {c for c in CHECKERS if m[c][i]} == set(owners(f"c{i}", CHECKERS, 3))


def test_balanced_within_a_few_percent():
    n = 40000
    s = scores([f"c{i}" for i in range(n)], CHECKERS)
    order = np.argsort(-s, axis=1)                   # checkers by score, per check
    for k in (1, 2):
        counts = np.bincount(order[:, :k].ravel(), minlength=len(CHECKERS))
        mean = n * k / len(CHECKERS)
        assert np.all(np.abs(counts - mean) / mean < 0.04), counts


def test_minimal_movement_on_join_and_leave():
    n = 20000
    before = masks(n, CHECKERS[:7], 2)
    after = masks(n, CHECKERS, 2)                    # use1-h joins
    moved = np.zeros(n, dtype=bool)
    for c in CHECKERS[:7]:
        # Nobody already there gains a check: only the newcomer takes some.
        assert not np.any(after[c] & ~before[c])
        moved |= before[c] != after[c]
    # Only checks the newcomer wins move: about k/n of them (2/8 = 25 %).
    assert moved.mean() < 0.27 and np.array_equal(moved, after["use1-h"])
    gone = masks(n, CHECKERS[1:7], 2)                # use1-a leaves
    kept = ~before["use1-a"]
    for c in CHECKERS[1:7]:
        assert np.array_equal(gone[c][kept], before[c][kept])


def test_owned_mask_per_region_and_special_checks():
    fleet = make_fleet({"us": ("u1", "u2", "u3"), "eu": ("e1",)}, per_region=2)
    checks = tcp_checks(300) + [
        Check(id="calc", type="calculated", children=("c0", "c1")),
        Check(id="off", type="tcp", host="127.0.0.1", port=1, disabled=True),
        Check(id="eu-only", type="tcp", host="127.0.0.1", port=1, regions=("eu",)),
    ]
    reg = make_registry(checks)
    masks = {c: owned_mask(reg, fleet, c) for c in ("u1", "u2", "u3", "e1")}
    us = masks["u1"].astype(int) + masks["u2"] + masks["u3"]
    assert np.all(us[:300] == 2)                 # checkers_per_region of the region
    assert np.all(masks["e1"][:300])             # fewer checkers than asked: all of them
    for m in masks.values():
        assert not m[300] and not m[301]         # calculated and disabled never probed
    assert masks["e1"][302] and us[302] == 0
    assert np.array_equal(masks["u2"], owned_mask(reg, fleet, "u2"))
    assert not owned_mask(reg, fleet, "nobody").any()
