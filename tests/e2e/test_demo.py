"""`healthplane demo` as a newcomer runs it: a subprocess, then nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from healthplane.deploy.demo import EXAMPLES
from healthplane.deploy.launcher import free_port, leftover_pids, port_is_free

pytestmark = pytest.mark.e2e


def _demo_ports_free() -> None:
    raw = yaml.safe_load((EXAMPLES / "checks.yaml").read_text())
    taken = [c["port"] for c in raw["checks"] if "port" in c
             and not port_is_free("127.0.0.1", c["port"])]
    if taken:
        pytest.skip(f"the demo's target ports {taken} are in use on this machine")


def _started_pids(run_dir: Path) -> list[int]:
    return [int(line.split()[0]) for line in (run_dir / "pids").read_text().splitlines()]


def _assert_nothing_left(run_dir: Path) -> None:
    assert leftover_pids(run_dir) == []
    for pid in _started_pids(run_dir):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "Z", f"process {pid} the demo started is still running"


def _demo_argv(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "healthplane", "demo", "--run-dir", str(run_dir),
            "--dns-listen", f"127.0.0.1:{free_port()}", *extra]


def test_demo_with_duration_exits_zero_and_leaves_nothing(tmp_path: Path) -> None:
    _demo_ports_free()
    run_dir = tmp_path / "run"
    done = subprocess.run(_demo_argv(run_dir, "--duration", "8"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "dig @127.0.0.1 -p" in done.stdout and "www.example.test" in done.stdout
    assert "api.example.test" in done.stdout
    # Not a terminal, so one compact line per second, with DNS answers in it.
    frames = [line for line in done.stdout.splitlines() if line.startswith("t=")]
    assert len(frames) >= 5
    assert any("www/A=192.0.2." in line for line in frames), frames[-1]
    assert len(_started_pids(run_dir)) == 1 + 6 + 2 + 1   # targets, checkers, aggregators, dns
    _assert_nothing_left(run_dir)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_stops_everything_on_ctrl_c_and_sigterm(tmp_path: Path, sig: int) -> None:
    _demo_ports_free()
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_demo_argv(run_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        seen = ""
        while "dig @" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "dig @" in seen, seen
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, seen + rest
    assert "stopped" in rest
    _assert_nothing_left(run_dir)
