"""Moving payloads between registry layouts by check id."""

from __future__ import annotations

import numpy as np
import pytest
from healthplane.aggregator.remap import build_remap
from healthplane.proto import codec

from tests.aggregator.tick_helpers import probe, registry


def ids(*names: str) -> list[str]:
    return list(names)


def remapped(old: list[str], new: list[str], states: list[int]) -> list[int]:
    reg = registry([probe(c) for c in new], version="new")
    out = build_remap(old, reg)(codec.encode(states))
    codec.validate(out, len(new))                     # right length, zero padding
    return codec.decode(out, len(new)).tolist()


H, U, N = codec.HEALTHY, codec.UNHEALTHY, codec.UNKNOWN


def test_reordered() -> None:
    assert remapped(ids("a", "b", "c"), ids("c", "a", "b"), [H, U, N]) == [N, H, U]


def test_added_read_unknown() -> None:
    assert remapped(ids("a", "b"), ids("x", "b", "a", "y", "z"), [H, U]) == [N, U, H, N, N]


def test_removed_are_gone() -> None:
    assert remapped(ids("a", "b", "c", "d", "e"), ids("e", "b"), [H, U, H, U, H]) == [H, U]


def test_appended_at_the_end() -> None:
    old = [f"c{i}" for i in range(7)]
    new = old + ["n1", "n2", "n3"]
    states = [H, U, N, H, U, N, H]
    assert remapped(old, new, states) == states + [N, N, N]


def test_removed_from_the_end_clears_padding() -> None:
    old = [f"c{i}" for i in range(8)]
    new = old[:5]
    assert remapped(old, new, [H, U, H, U, U, U, U, U]) == [H, U, H, U, U]


def test_unchanged_is_identical() -> None:
    old = [f"c{i}" for i in range(9)]
    payload = codec.encode([H, U, N, H, U, N, H, U, U])
    assert build_remap(old, registry([probe(c) for c in old]))(payload) == payload


def test_random_layouts_match_by_id() -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        universe = [f"id{i}" for i in range(200)]
        old = list(rng.choice(universe, int(rng.integers(0, 120)), replace=False))
        new = list(rng.choice(universe, int(rng.integers(0, 120)), replace=False))
        states = rng.integers(0, 3, len(old)).tolist()
        got = remapped(old, new, states)
        by_id = dict(zip(old, states, strict=True))
        assert got == [by_id.get(c, N) for c in new]


def test_wrong_length_and_duplicates() -> None:
    remap = build_remap(ids("a", "b", "c", "d", "e"), registry([probe("a")]))
    with pytest.raises(codec.SnapshotError, match="expected 2"):
        remap(b"\x00")
    with pytest.raises(ValueError, match="twice"):
        build_remap(ids("a", "a"), registry([probe("a")]))
