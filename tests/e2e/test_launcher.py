"""The launcher starts real processes and, on every way out, leaves none behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from healthplane.deploy.launcher import Fleet, LaunchError, free_ports, leftover_pids
from healthplane.proto.config.errors import ConfigError

pytestmark = pytest.mark.e2e


def _configs(d: Path, aggregator_port: int, target_port: int) -> tuple[Path, Path]:
    checks = d / "checks.yaml"
    checks.write_text("checks:\n"
                      f"  - {{id: t, type: tcp, host: 127.0.0.1, port: {target_port}, "
                      "interval: 1}\n")
    fleet = d / "fleet.yaml"
    fleet.write_text("regions:\n  here: [here-a]\n"
                     f'aggregators: ["127.0.0.1:{aggregator_port}"]\n'
                     "allow_private_targets: true\n")
    return checks, fleet


def test_a_bad_config_fails_before_anything_starts(tmp_path: Path) -> None:
    checks, fleet = _configs(tmp_path, *free_ports(2))
    checks.write_text("checks:\n  - {id: t, type: tcp, host: 127.0.0.1, port: 0}\n")
    with pytest.raises(ConfigError) as info:
        Fleet(checks, fleet, run_dir=tmp_path / "run")
    assert "checks.yaml:2" in str(info.value)
    assert not (tmp_path / "run" / "pids").exists()


def test_a_process_that_cannot_start_names_its_log_and_nothing_stays(tmp_path: Path) -> None:
    aggregator, target = free_ports(2)
    checks, fleet = _configs(tmp_path, aggregator, target)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", aggregator))
        squatter.listen()
        with pytest.raises(LaunchError) as info:
            Fleet(checks, fleet, run_dir=tmp_path / "run", ready_timeout=30).start()
    assert "aggregator-0" in str(info.value) and "aggregator-0.log" in str(info.value)
    assert leftover_pids(tmp_path / "run") == []


def test_an_exception_inside_the_with_block_stops_every_process(tmp_path: Path) -> None:
    checks, fleet = _configs(tmp_path, *free_ports(2))
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
        with Fleet(checks, fleet, run_dir=tmp_path / "run") as f:
            assert len(f.pids()) == 2 and all(p.alive() for p in f.processes())
            raise RuntimeError("boom")
    assert all(not p.alive() for p in f.processes())
    assert leftover_pids(tmp_path / "run") == []
