"""--snapshot-file: contents, format and atomic replacement."""

from __future__ import annotations

import os
import threading

import msgpack
from healthplane.aggregator.server import run_aggregator
from healthplane.aggregator.snapshot_file import read_snapshot_file, write_atomically
from healthplane.proto import codec

from healthplane.runtime.clock import FakeClock
from tests.aggregator.conftest import make_fleet, make_registry, report, snap

REG = make_registry()
FLEET = make_fleet()


async def test_file_holds_the_latest_tick_in_the_documented_format(tmp_path):
    path = str(tmp_path / "health.msgpack")
    clock = FakeClock()
    async with run_aggregator(REG, FLEET, clock=clock, snapshot_file=path,
                              start_ticking=False, warm_up=False) as agg:
        await report(agg.port, [snap("use1-a", "us-east", REG, [1, 2, 1, 2, 0])])
        agg.on_tick()
        agg.on_tick()
        await agg.snapshot_writer.flush()
        data = read_snapshot_file(path)
        assert set(data) == {"registry_version", "sequence", "generated_unix_ms",
                             "check_count", "states", "check_ids"}
        assert data["registry_version"] == "v1"
        assert data["sequence"] == agg.state.sequence
        assert data["generated_unix_ms"] == clock.wall_ms()
        assert data["check_count"] == 5
        assert isinstance(data["states"], bytes)
        assert codec.decode(data["states"], 5).tolist() == [1, 2, 1, 2, 1]
        assert data["check_ids"] == list(REG.ids)
        # No temporary files are left behind.
        assert os.listdir(tmp_path) == ["health.msgpack"]


def test_readers_never_see_a_partial_file(tmp_path):
    path = str(tmp_path / "snap")
    big = [msgpack.packb({"n": i, "pad": bytes([i % 256]) * 200_000}) for i in range(2)]
    write_atomically(path, big[0])
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            with open(path, "rb") as f:
                raw = f.read()
            try:
                obj = msgpack.unpackb(raw)
                assert obj["pad"] == bytes([obj["n"] % 256]) * 200_000
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                bad.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(200):
            write_atomically(path, big[i % 2])
    finally:
        stop.set()
        t.join()
    assert bad == []
    assert os.listdir(tmp_path) == ["snap"]


async def test_unwritable_path_is_counted_not_fatal(tmp_path):
    path = str(tmp_path / "missing-dir" / "snap")
    async with run_aggregator(REG, FLEET, clock=FakeClock(), snapshot_file=path,
                              start_ticking=False, warm_up=False) as agg:
        s0 = agg.state.sequence
        agg.on_tick()
        await agg.snapshot_writer.flush()
        agg.on_tick()
        await agg.snapshot_writer.flush()
        assert agg.snapshot_writer.failed >= 1
        assert agg.state.sequence == s0 + 2
