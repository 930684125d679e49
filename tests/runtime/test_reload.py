"""The one reloader: fingerprint, taste in a child with a timeout, adopt, keep the old."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from healthplane.proto.config.errors import ConfigError

from healthplane.runtime.clock import SystemClock
from healthplane.runtime.files import Fingerprint, UnreadableFile
from healthplane.runtime.reload import Reloader, run_in_child, taste_cadence

pytestmark = pytest.mark.timeout(60)


# -- run_in_child (functions the spawned child imports) ----------------------

def answer(x: int) -> int:
    return x * 2


def refuse() -> None:
    raise ConfigError(["checks.yaml:3: checks[0].port: must be 1..65535 (got 0)"])


def crash() -> None:
    raise KeyError("boom")


def die() -> None:
    os._exit(7)


def hang() -> None:
    time.sleep(600)


def test_the_child_answers_or_its_errors_come_back_as_lines():
    assert run_in_child(answer, 21, timeout=30) == 42
    with pytest.raises(ConfigError) as info:
        run_in_child(refuse, timeout=30)
    assert info.value.errors == ["checks.yaml:3: checks[0].port: must be 1..65535 (got 0)"]
    with pytest.raises(ConfigError) as info:
        run_in_child(crash, timeout=30)
    assert info.value.errors == ["trial failed: KeyError: 'boom'"]
    with pytest.raises(ConfigError) as info:
        run_in_child(die, timeout=30)
    assert info.value.errors == ["trial process died (exit code 7)"]


def test_a_child_that_hangs_is_killed_at_its_timeout():
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        run_in_child(hang, timeout=3)
    took = time.monotonic() - started
    assert info.value.errors == ["trial process gave no answer within 3 s; killed it"]
    assert took < 15


def test_taste_cadence_runs_a_few_real_cycles_and_refuses_work_slower_than_the_cadence():
    runs: list[float] = []
    taste_cadence(lambda k: runs.append(time.monotonic()), 0.1, "tick")
    assert len(runs) == 3 and runs[-1] - runs[0] >= 0.19
    with pytest.raises(ConfigError) as info:
        taste_cadence(lambda k: time.sleep(0.12), 0.05, "tick")
    assert info.value.errors[0].startswith("trial: one cycle took 0.1")
    assert info.value.errors[0].endswith("longer than tick (0.05 s) allows")
    started = time.monotonic()
    taste_cadence(lambda k: None, 60.0, "tick")      # one cycle, never a minute's wait
    assert time.monotonic() - started < 1


# -- the reloader ------------------------------------------------------------

def make(load, adopt=lambda new: True, **kw) -> tuple[Reloader, list[str]]:
    counted: list[str] = []
    return Reloader("config", load, adopt, clock=SystemClock(), period=0, count=counted.append,
                    **kw), counted


async def test_an_unreadable_file_fails_at_the_fingerprint_and_nothing_is_loaded(tmp_path,
                                                                                 caplog):
    path = tmp_path / "checks.yaml"
    os.mkfifo(path)
    loads = []
    reloader, counted = make(lambda: loads.append(1), fingerprint=Fingerprint([path]))
    assert await reloader.reload_once() == "failed"
    assert await reloader.reload_once(force=True) == "failed"
    assert loads == [] and counted == ["failed", "failed"]
    assert [(r.getMessage(), r.what, r.problem) for r in caplog.records] == [
        ("reload rejected, kept the running config", "config",
         f"{path}: cannot read: is a FIFO, not a regular file")] * 2


async def test_a_stuck_file_system_times_out_and_does_not_pile_up_threads():
    release = threading.Event()
    calls = []

    def fingerprint() -> bytes:
        calls.append(1)
        release.wait(30)
        return b"digest"

    reloader, counted = make(lambda: "config", fingerprint=fingerprint, file_timeout=0.2)
    started = time.monotonic()
    assert await reloader.reload_once() == "failed"
    assert await reloader.reload_once() == "failed"       # the first is still stuck
    assert time.monotonic() - started < 2 and len(calls) == 1
    release.set()
    for _ in range(100):
        if reloader._fingerprinting is not None and reloader._fingerprinting.done():
            break
        await asyncio.sleep(0.01)
    assert await reloader.reload_once() == "adopted"
    assert counted == ["failed", "failed", "adopted"]


async def test_unchanged_files_are_not_loaded_again_unless_triggered(tmp_path):
    path = tmp_path / "checks.yaml"
    path.write_text("v1")
    fingerprint = Fingerprint([path])
    loads = []
    reloader, counted = make(lambda: loads.append(path.read_text()) or path.read_text(),
                             fingerprint=fingerprint, running=fingerprint())
    assert await reloader.reload_once() == "unchanged" and loads == []
    path.write_text("v2")
    assert await reloader.reload_once() == "adopted" and loads == ["v2"]
    assert await reloader.reload_once() == "unchanged" and loads == ["v2"]
    assert await reloader.reload_once(force=True) == "adopted" and loads == ["v2", "v2"]


async def test_a_refused_or_failing_adoption_keeps_the_running_config(caplog):
    def refuse(new: str) -> bool:
        raise ValueError(f"cannot take {new}")

    reloader, counted = make(lambda: "big", refuse)
    assert await reloader.reload_once() == "failed"
    assert caplog.records[-1].problem == "cannot take big"

    async def same(new: str) -> bool:
        return False

    reloader, counted = make(lambda: "same", same)
    assert await reloader.reload_once() == "unchanged"


async def test_a_load_that_never_returns_times_out(tmp_path):
    release = threading.Event()
    reloader, counted = make(lambda: release.wait(30), load_timeout=0.2)
    started = time.monotonic()
    assert await reloader.reload_once() == "failed"
    assert time.monotonic() - started < 2
    release.set()


async def test_run_reloads_on_trigger_and_on_its_period_and_stops():
    loads = []
    reloader = Reloader("zone", lambda: loads.append(time.monotonic()), lambda new: True,
                        clock=SystemClock(), period=0.3)
    task = asyncio.create_task(reloader.run())
    reloader.trigger()
    for _ in range(200):
        if len(loads) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(loads) >= 3                 # one triggered, then every 0.3 s
    reloader.stop()
    await asyncio.wait_for(task, 5)


async def test_any_unreadable_watched_file_fails_the_attempt():
    def fingerprint() -> bytes:
        raise UnreadableFile("zone.yaml", "cannot read: permission denied")

    reloader, counted = make(lambda: "x", fingerprint=fingerprint)
    assert await reloader.reload_once() == "failed"
