"""The word-parallel vote count against a plain reference, and the slot store."""

from __future__ import annotations

import numpy as np
import pytest
from healthplane.aggregator.tick import TickEngine
from healthplane.aggregator.votes import (
    SlotMatrix,
    VoteCounter,
    lane_of,
    to_check_order,
    to_lane_order,
)
from healthplane.proto import codec

from tests.aggregator.tick_helpers import fleet, registry

# Every engine here runs on both tick paths (numpy and compiled).
pytestmark = pytest.mark.usefixtures("tick_path")


def reference(states: np.ndarray, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    live = states[fresh]
    return (live == codec.HEALTHY).sum(0), (live != codec.UNKNOWN).sum(0)


def fill(slots: SlotMatrix, rng: np.random.Generator, p_unknown: float = 0.3) -> np.ndarray:
    n_rows, n = slots.n_rows, slots.check_count
    states = rng.integers(1, 3, (n_rows, n)).astype(np.uint8)
    states[rng.random((n_rows, n)) < p_unknown] = codec.UNKNOWN
    for r in range(n_rows):
        slots.write(r, codec.encode(states[r]))
    return states


CHECKERS = [1, 2, 3, 4, 14, 15, 16, 17, 29, 31, 45, 64, 99, 100, 127, 128, 129, 130]
CHECKS = [1, 3, 5, 31, 33, 63, 65, 127, 129, 257, 1001]


@pytest.mark.parametrize("n_rows", CHECKERS)
def test_counts_match_reference(n_rows: int) -> None:
    rng = np.random.default_rng(n_rows)
    for n in CHECKS:
        for chunk_words in (1, 3, 1024):
            slots = SlotMatrix(n_rows, n, chunk_words=chunk_words)
            states = fill(slots, rng)
            fresh = rng.random(n_rows) < 0.7
            for mask in (fresh, np.ones(n_rows, bool)):
                h, u = VoteCounter(slots).count(slots, mask)
                want_h, want_r = reference(states, mask)
                assert to_check_order(h, n).tolist() == want_h.tolist(), (n, chunk_words)
                assert to_check_order(h + u, n).tolist() == want_r.tolist(), (n, chunk_words)


@pytest.mark.parametrize("n_rows", [255, 256, 300])
def test_more_than_255_checkers(n_rows: int) -> None:
    rng = np.random.default_rng(n_rows)
    slots = SlotMatrix(n_rows, 70, chunk_words=1)
    states = fill(slots, rng, p_unknown=0.0)
    states[:, 0] = codec.HEALTHY          # every row healthy: the count's maximum
    for r in range(n_rows):
        slots.write(r, codec.encode(states[r]))
    for mask in (np.ones(n_rows, bool), rng.random(n_rows) < 0.5):
        h, u = VoteCounter(slots).count(slots, mask)
        want_h, want_r = reference(states, mask)
        assert to_check_order(h, 70).tolist() == want_h.tolist()
        assert to_check_order(h + u, 70).tolist() == want_r.tolist()


def test_engine_status_matches_reference_rule() -> None:
    rng = np.random.default_rng(3)
    for n_rows, n in [(1, 7), (16, 1001), (31, 65), (130, 333)]:
        reg, fl = registry(n), fleet(n_rows)
        engine = TickEngine(reg, fl)
        slots = engine.new_slots()
        states = fill(slots, rng)
        fresh = rng.random(n_rows) < 0.8
        res = engine.compute(slots, fresh, 5)
        h, r = reference(states, fresh)
        want = np.where(r == 0, codec.HEALTHY,
                        np.where(h * 50 > 9 * r, codec.HEALTHY, codec.UNHEALTHY))
        assert res.status.tolist() == want.tolist()
        assert res.healthy_votes.tolist() == h.tolist()
        assert res.reporting_votes.tolist() == r.tolist()
        assert codec.decode(res.states, n).tolist() == want.tolist()


def test_lane_maps_round_trip() -> None:
    nw = 5
    values = np.arange(150, dtype=np.int64)
    lanes = to_lane_order(values, nw, fill=-1)
    assert lanes.size == 32 * nw
    assert to_check_order(lanes, 150).tolist() == values.tolist()
    assert lanes[lane_of(values, nw)].tolist() == values.tolist()
    assert sorted(lane_of(np.arange(32 * nw), nw).tolist()) == list(range(32 * nw))


def test_slot_write_row_clear_and_votes_of() -> None:
    slots = SlotMatrix(3, 2050, chunk_words=8)   # several chunks and a partial last one
    rng = np.random.default_rng(1)
    states = rng.integers(0, 3, (3, 2050)).astype(np.uint8)
    payloads = [codec.encode(s) for s in states]
    for r, p in enumerate(payloads):
        slots.write(r, p)
    for r, p in enumerate(payloads):
        view = slots.row(r)
        assert bytes(view) == p and len(view) == len(p)
        assert view[0] == p[0] and view[-1] == p[-1] and view[500] == p[500]
    for i in (0, 1, 1027, 2049):
        assert slots.votes_of(i).tolist() == states[:, i].tolist()
    slots.clear(1)
    assert bytes(slots.row(1)) == bytes(len(payloads[1]))
    assert bytes(slots.row(2)) == payloads[2]
    slots.write(1, np.frombuffer(payloads[0], np.uint8))
    assert bytes(slots.row(1)) == payloads[0]


def test_slot_errors() -> None:
    slots = SlotMatrix(2, 10)
    with pytest.raises(ValueError, match="expected 3"):
        slots.write(0, b"\x00" * 4)
    with pytest.raises(IndexError):
        slots.write(2, b"\x00" * 3)
    with pytest.raises(IndexError):
        slots.row(-1)
    with pytest.raises(IndexError):
        slots.votes_of(10)
    with pytest.raises(IndexError):
        slots.row(0)[3]


def test_empty_registry() -> None:
    engine = TickEngine(registry(0), fleet(2))
    slots = engine.new_slots()
    slots.write(0, b"")
    res = engine.compute(slots, np.ones(2, bool), 1)
    assert res.states == b"" and res.status.size == 0 and res.changed == 0
