"""`healthplane checker` as a real process: errors, signals, reload, metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.checker.ingest_server import start_ingest

FLEET = """\
regions:
  r1: [a, b]
checkers_per_region: 1
aggregators: ["127.0.0.1:{port}"]
report_interval: 0.2
allow_private_targets: true
"""
CHECKS = """\
checks:
  - id: one
    type: tcp
    host: 127.0.0.1
    port: 9
    interval: 1
    timeout: 0.5
  - id: two
    type: tcp
    host: 127.0.0.1
    port: 9
    interval: 1
    timeout: 0.5
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "healthplane", "checker", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(tmp_path: Path, port: int = 1) -> tuple[str, str]:
    (tmp_path / "checks.yaml").write_text(CHECKS)
    (tmp_path / "fleet.yaml").write_text(FLEET.format(port=port))
    return str(tmp_path / "checks.yaml"), str(tmp_path / "fleet.yaml")


async def run_cli(*args: str, timeout: float = 20) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*cli(*args), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, err.decode()


@pytest.mark.parametrize("case", ["unknown-id", "missing-file", "bad-yaml", "bad-metrics"])
async def test_errors_are_one_line_and_nonzero(tmp_path, case):
    checks, fleet = write(tmp_path)
    args = ["--checks", checks, "--fleet", fleet, "--id", "a"]
    if case == "unknown-id":
        args[-1] = "zz"
    elif case == "missing-file":
        args[1] = str(tmp_path / "nope.yaml")
    elif case == "bad-yaml":
        (tmp_path / "checks.yaml").write_text("checks:\n  - id: x\n    type: tcp\n  port: [\n")
    else:
        args += ["--metrics", "nohostport"]
    code, err = await run_cli(*args)
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("healthplane checker: "), err
    if case == "unknown-id":
        assert "'zz'" in err and "a, b" in err


async def test_runs_reports_reloads_and_stops_on_sigterm(tmp_path):
    server, ingest, port = await start_ingest()
    checks, fleet = write(tmp_path, port)
    mport = free_port()
    proc = await asyncio.create_subprocess_exec(
        *cli("--checks", checks, "--fleet", fleet, "--id", "a", "--metrics",
             f"127.0.0.1:{mport}", "-v"),
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await ingest.wait_for(3, timeout=15)
        snap = ingest.received[-1][1]
        assert snap.checker_id == "a" and snap.check_count == 2 and len(snap.states) == 1

        (tmp_path / "checks.yaml").write_text(CHECKS.replace("port: 9\n", "port: 0\n", 1))
        proc.send_signal(signal.SIGHUP)
        text = ""
        for _ in range(50):
            await asyncio.sleep(0.1)
            text = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics",
                                               timeout=2).read().decode())
            if 'healthplane_checker_config_reloads_total{result="failed"} 1.0' in text:
                break
        assert 'healthplane_checker_config_reloads_total{result="failed"} 1.0' in text
        assert "healthplane_checker_snapshots_sent_total" in text
        # Still running on the old registry and still reporting.
        seen = len(ingest.received)
        await ingest.wait_for(seen + 2, timeout=10)
        assert ingest.received[-1][1].registry_version == snap.registry_version
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
        err = (await proc.stderr.read()).decode()
        assert code == 0, err
        assert "Traceback" not in err
        assert "reload rejected" in err and "checks.yaml:5" in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop(None)
