"""Warm start in-process: persisted states, warm-up, sequence, temporary files."""

from __future__ import annotations

import os

import numpy as np
from healthplane.aggregator.server import run_aggregator
from healthplane.aggregator.snapshot_file import read_snapshot_file
from healthplane.aggregator.warmstart import Persisted, WarmUp, clean_temp_files, first_sequence
from healthplane.proto import codec

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap

REG = make_registry()          # web-1, web-2, web-3, db-1, api-1
FLEET = make_fleet()           # use1-a, use1-b, euw1-a; stale_after 3


async def _run_once(path: str, reg, states, clock: FakeClock) -> int:
    async with run_aggregator(reg, FLEET, clock=clock, snapshot_file=path,
                              start_ticking=False) as agg:
        for cid, region in (("use1-a", "us-east"), ("use1-b", "us-east"),
                            ("euw1-a", "eu-west")):
            await report(agg.port, [snap(cid, region, reg, states)])
        pub = agg.on_tick()
        assert not pub.warming            # every checker reported
        await agg.snapshot_writer.flush()
        return pub.sequence


async def test_a_restart_remembers_dead_endpoints_and_warms_up(tmp_path):
    path = str(tmp_path / "health.msgpack")
    clock = FakeClock()
    first = await _run_once(path, REG, [2, 1, 2, 1, 1], clock)
    # A crash mid-write left a temporary file behind.
    stale_tmp = tmp_path / ".health.msgpack.x1y2.tmp"
    stale_tmp.write_bytes(b"partial")
    await clock.advance(5.0)
    async with run_aggregator(REG, FLEET, clock=clock, snapshot_file=path,
                              start_ticking=False) as agg:
        assert not stale_tmp.exists()
        # Nobody has reported yet: no vote, and the file's states decide.
        pub = agg.on_tick()
        assert pub.warming and pub.sequence > first
        assert codec.decode(pub.states, 5).tolist() == [2, 1, 2, 1, 1]
        # The file is not rewritten while warming.
        await agg.snapshot_writer.flush()
        assert read_snapshot_file(path)["sequence"] == first
        # One checker says web-1 is back; the others are still to come.
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 1, 2, 1, 1])])
        await clock.advance(1.0)
        pub = agg.on_tick()
        assert pub.warming and codec.decode(pub.states, 5).tolist()[0] == codec.HEALTHY
        await clock.advance(2.5)                # one stale_after since the start
        pub = agg.on_tick()
        assert not pub.warming and not agg.warming
    assert os.listdir(tmp_path) == ["health.msgpack"]


async def test_a_changed_registry_across_the_restart_moves_states_by_id(tmp_path):
    path = str(tmp_path / "health.msgpack")
    clock = FakeClock()
    old = make_registry(("a", "b", "c"), version="old")
    await _run_once(path, old, [2, 1, 2], clock)
    new = make_registry(("c", "x", "a"), version="new")
    async with run_aggregator(new, FLEET, clock=clock, snapshot_file=path,
                              start_ticking=False) as agg:
        pub = agg.on_tick()
        # c and a keep their states; x was never seen: healthy.
        assert codec.decode(pub.states, 3).tolist() == [2, 1, 2]
        # Checkers still on the old file are remapped, not dropped.
        summary = await report(agg.port, [snap("use1-a", "us-east", old, [1, 1, 1])])
        assert summary.accepted == 1 and agg.state.counters.remapped == 1


def test_first_sequence_grows_with_or_without_a_file():
    assert first_sequence(None, 1_700_000_000_000) == 1_700_000_000_000
    ahead = Persisted(1_800_000_000_000, None, 0)
    assert first_sequence(ahead, 1_700_000_000_000) == 1_800_000_000_001


def test_warm_up_ends_when_every_checker_reported_or_after_stale_after():
    w = WarmUp(started=100.0, stale_after=3.0)
    assert w.update(101.0, np.array([-np.inf, 100.5]))
    assert not w.update(101.5, np.array([101.2, 100.5])) and w.reason == "every checker reported"
    w = WarmUp(started=100.0, stale_after=3.0)
    assert w.update(102.9, np.array([-np.inf]))
    assert not w.update(103.0, np.array([-np.inf])) and w.warm
    assert not w.update(103.1, np.array([-np.inf]))     # latched


def test_clean_temp_files_touches_only_our_own(tmp_path):
    path = tmp_path / "snap"
    (tmp_path / ".snap.abc.tmp").write_bytes(b"")
    (tmp_path / ".other.abc.tmp").write_bytes(b"")
    (tmp_path / "snap").write_bytes(b"x")
    assert clean_temp_files(str(path)) == 1
    assert sorted(os.listdir(tmp_path)) == [".other.abc.tmp", "snap"]
