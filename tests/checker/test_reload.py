"""Reload: a bad file keeps the old registry; a good one is adopted with state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from healthplane.checker.metrics import CheckerMetrics
from healthplane.checker.reload import adopt_into
from healthplane.checker.runner import Checker
from healthplane.proto.codec import HEALTHY, UNHEALTHY, UNKNOWN
from healthplane.proto.config.loader import load_config

from healthplane.runtime.clock import FakeClock
from healthplane.runtime.reload import Reloader
from tests.checker.helpers import until

FLEET = """\
regions:
  r1: [a]
aggregators: ["127.0.0.1:1"]
report_interval: 1.0
allow_private_targets: true
canaries: []
"""


def checks_yaml(ids: list[str]) -> str:
    out = ["checks:"]
    for i in ids:
        out += [f"  - id: {i}", "    type: tcp", "    host: 127.0.0.1", "    port: 9",
                "    interval: 1", "    timeout: 0.5", "    failure_threshold: 1"]
    return "\n".join(out) + "\n"


def counting(metrics: CheckerMetrics):
    return lambda result: metrics.config_reloads.labels(result).inc()


def files(tmp_path: Path, ids: list[str]) -> tuple[Path, Path]:
    checks, fleet = tmp_path / "checks.yaml", tmp_path / "fleet.yaml"
    checks.write_text(checks_yaml(ids))
    fleet.write_text(FLEET)
    return checks, fleet


async def test_bad_file_keeps_old_registry_good_file_adopted_with_state(tmp_path, caplog):
    from tests.checker.helpers import Recorder

    checks, fleet_path = files(tmp_path, ["x", "y", "z"])

    def load():
        registry, fleet, _ = load_config(checks, fleet_path)
        return registry, fleet

    clock = FakeClock()
    registry, fleet = load()
    metrics = CheckerMetrics()
    rec = Recorder(clock, ok={"x": True, "y": False, "z": True, "w": True})
    checker = Checker(registry, fleet, "a", clock=clock, make_prober=rec, metrics=metrics)
    reloader = Reloader("config", load, lambda new: adopt_into(checker, new),
                        period=30.0, clock=clock, count=counting(metrics))
    task = asyncio.create_task(checker.run())
    await clock.advance(3.0)
    assert checker.last_states.tolist() == [HEALTHY, UNHEALTHY, HEALTHY]

    assert await reloader.reload_once() == "unchanged"

    checks.write_text(checks_yaml(["x", "y"]) + "  - id: bad\n    type: tcp\n    port: 99999\n")
    assert await reloader.reload_once() == "failed"
    assert checker.registry is registry
    assert any("checks.yaml" in getattr(r, "problem", "") for r in caplog.records)
    await clock.advance(2.0)
    assert checker.last_states.tolist() == [HEALTHY, UNHEALTHY, HEALTHY]

    checks.write_text(checks_yaml(["w", "y", "x"]))   # z gone, w new, order changed
    assert await reloader.reload_once() == "adopted"
    assert checker.registry.ids == ("w", "y", "x")
    msg = checker.report_once()                        # carried over before any new probe
    assert checker.last_states.tolist() == [UNKNOWN, UNHEALTHY, HEALTHY]
    assert msg.check_count == 3
    await clock.advance(3.0)
    assert checker.last_states.tolist() == [HEALTHY, UNHEALTHY, HEALTHY]

    fleet_path.write_text(FLEET.replace("[a]", "[b]"))  # this checker removed: refused
    assert await reloader.reload_once() == "failed"
    assert checker.fleet.region_of("a") == "r1"
    checker.stop()
    await clock.advance(1.0)
    await task
    counts = {r: metrics.config_reloads.labels(r)._value.get()
              for r in ("adopted", "unchanged", "failed")}
    assert counts == {"adopted": 1, "unchanged": 1, "failed": 2}


async def test_periodic_and_triggered_reload(tmp_path):
    checks, fleet_path = files(tmp_path, ["x"])
    calls = []

    def load():
        calls.append(1)
        registry, fleet, _ = load_config(checks, fleet_path)
        return registry, fleet

    clock = FakeClock()
    registry, fleet = load()
    calls.clear()
    metrics = CheckerMetrics()
    reloader = Reloader("config", load, lambda new: False, period=30.0,
                        clock=clock, count=counting(metrics))

    def finished() -> int:
        return int(sum(metrics.config_reloads.labels(r)._value.get()
                       for r in ("adopted", "unchanged", "failed")))

    task = asyncio.create_task(reloader.run())
    await clock.settle()               # its schedule starts now
    for t in range(1, 96):
        await clock.advance(1.0)
        # The load runs in a worker thread, in real time: let a due reload
        # finish before virtual time moves on, however slow the machine.
        await until(lambda due=t // 30: finished() == due)
    assert len(calls) == 3             # at 30, 60 and 90 s
    reloader.trigger()                 # SIGHUP
    await until(lambda: finished() == 4)
    assert len(calls) == 4
    reloader.stop()
    await task
    assert np.array_equal(registry.ids, ("x",))


async def test_unchanged_files_are_not_parsed_again(tmp_path):
    import hashlib

    checks, fleet_path = files(tmp_path, ["x"])
    loads = []

    def load():
        loads.append(1)
        registry, fleet, _ = load_config(checks, fleet_path)
        return registry, fleet

    def fingerprint() -> bytes:
        return hashlib.blake2b(checks.read_bytes() + fleet_path.read_bytes()).digest()

    registry, fleet = load()
    current = [(registry, fleet)]

    def adopt(new):
        if new[0].version == current[0][0].version and new[1] == current[0][1]:
            return False
        current[0] = new
        return True

    reloader = Reloader("config", load, adopt, period=30.0, clock=FakeClock(),
                        fingerprint=fingerprint, running=fingerprint())
    loads.clear()
    assert await reloader.reload_once() == "unchanged"
    assert loads == []                                   # same bytes: not parsed
    checks.write_text(checks_yaml(["x"]) + "  - id: bad\n")
    assert await reloader.reload_once() == "failed"
    assert await reloader.reload_once() == "failed"      # still bad, not parsed again
    assert len(loads) == 1
    checks.write_text(checks_yaml(["x", "y"]))
    assert await reloader.reload_once() == "adopted"
    assert await reloader.reload_once() == "unchanged"
    assert len(loads) == 2 and current[0][0].ids == ("x", "y")


async def test_file_config_loads_and_tastes_in_a_child_process(tmp_path):
    import pytest
    from healthplane.checker.reload import FileConfig
    from healthplane.proto.config.errors import ConfigError

    checks, fleet_path = files(tmp_path, ["x", "y"])
    config = FileConfig(str(checks), str(fleet_path), "a")
    registry, fleet = await asyncio.to_thread(config.load)
    assert registry.ids == ("x", "y") and fleet.region_of("a") == "r1"
    assert registry == config.load_here()[0]
    checks.write_text(checks_yaml(["x"]) + "  - id: bad\n    type: tcp\n    port: 99999\n")
    with pytest.raises(ConfigError, match=r"checks.yaml:\d+"):
        await asyncio.to_thread(config.load)
    checks.write_text(checks_yaml(["x"]))
    with pytest.raises(ConfigError, match="'zz' is not in the fleet"):
        await asyncio.to_thread(FileConfig(str(checks), str(fleet_path), "zz").load)
