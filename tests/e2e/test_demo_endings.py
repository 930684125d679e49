"""However the demo ends, its children end with it and free their ports.

SIGINT and SIGTERM sent to the demo are covered in test_demo.py; here Ctrl-C
is typed into a real terminal (tmux), the terminal goes away (tmux
kill-session: SIGHUP), and the demo is SIGKILLed, when only the lifeline
pipe can tell the children.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from healthplane.deploy.demo import EXAMPLES
from healthplane.deploy.launcher import free_port, port_is_free

from tests.e2e.test_demo import _assert_nothing_left, _demo_ports_free, _started_pids

pytestmark = pytest.mark.e2e

CHILDREN = 1 + 6 + 2 + 1   # targets, checkers, aggregators, DNS front


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_children_gone(run_dir: Path, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = [pid for pid in _started_pids(run_dir) if _alive(pid)]
        if not live:
            return []
        time.sleep(0.2)
    return live


def _wait_started(run_dir: Path, timeout: float = 90.0) -> None:
    """Until every child is started and the demo printed its first view."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = run_dir / "pids"
        if pids.exists() and len(pids.read_text().splitlines()) == CHILDREN:
            # The DNS front is started last and waited for; checkers after it.
            logs = [run_dir / f"checker-{c}.log" for c in ("use1-a", "aps1-b")]
            if all(p.exists() for p in logs) and (run_dir / "dns.log").exists():
                time.sleep(3.0)
                return
        time.sleep(0.2)
    raise AssertionError(f"demo not started after {timeout} s")


def _ports(run_dir: Path, dns_port: int) -> list[int]:
    fleet = run_dir / "fleet.yaml"
    raw = yaml.safe_load((fleet if fleet.exists() else EXAMPLES / "fleet.yaml").read_text())
    ports = [int(str(a).rpartition(":")[2]) for a in raw["aggregators"]]
    checks = yaml.safe_load((EXAMPLES / "checks.yaml").read_text())["checks"]
    return ports + [dns_port] + [c["port"] for c in checks if "port" in c]


def _assert_ports_free(ports: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = [p for p in ports if not port_is_free("127.0.0.1", p)]
        if not held:
            return
        time.sleep(0.2)
    raise AssertionError(f"ports still held after the demo ended: {held}")


def test_sigkill_of_the_demo_takes_every_child_with_it(tmp_path: Path) -> None:
    _demo_ports_free()
    run_dir, dns_port = tmp_path / "run", free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "healthplane", "demo", "--run-dir", str(run_dir),
         "--dns-listen", f"127.0.0.1:{dns_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_started(run_dir)
        children = _started_pids(run_dir)
        assert all(_alive(pid) for pid in children)
        demo.kill()
        demo.wait(timeout=10)
        assert _wait_children_gone(run_dir) == [], "children outlived a SIGKILLed demo"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in _started_pids(run_dir) if (run_dir / "pids").exists() else []:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
    _assert_nothing_left(run_dir)
    _assert_ports_free(_ports(run_dir, dns_port))
    # A second demo on the same ports starts at once.
    again = subprocess.run(
        [sys.executable, "-m", "healthplane", "demo", "--run-dir", str(tmp_path / "again"),
         "--dns-listen", f"127.0.0.1:{dns_port}", "--duration", "3"],
        capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "were taken" not in again.stdout, again.stdout[:2000]
    _assert_nothing_left(tmp_path / "again")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("ending", ["kill-session", "ctrl-c"])
def test_closing_the_terminal_or_ctrl_c_takes_every_child_with_it(tmp_path: Path,
                                                                  ending: str) -> None:
    """In a real terminal: tmux closes it (SIGHUP), or types Ctrl-C into it."""
    _demo_ports_free()
    run_dir, dns_port = tmp_path / "run", free_port()
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    command = (f"{sys.executable} -m healthplane demo --run-dir {run_dir} "
               f"--dns-listen 127.0.0.1:{dns_port}; echo demo-exit=$?; sleep 60")
    env = dict(os.environ, TERM="xterm")
    subprocess.run([*tmux, "new-session", "-d", "-s", "demo", "-x", "160", "-y", "50",
                    command], check=True, env=env, timeout=30)
    try:
        _wait_started(run_dir)
        assert all(_alive(pid) for pid in _started_pids(run_dir))
        if ending == "kill-session":
            subprocess.run([*tmux, "kill-session", "-t", "demo"], check=True, timeout=10)
        else:
            subprocess.run([*tmux, "send-keys", "-t", "demo", "C-c"], check=True, timeout=10)
        assert _wait_children_gone(run_dir) == [], f"children outlived the demo ({ending})"
        if ending == "ctrl-c":
            deadline = time.monotonic() + 30
            screen = ""
            while "demo-exit=" not in screen and time.monotonic() < deadline:
                time.sleep(0.3)
                screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "demo"],
                                        capture_output=True, text=True, timeout=10).stdout
            assert "demo-exit=0" in screen, screen
            assert "stopped" in screen
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)
        for pid in _started_pids(run_dir) if (run_dir / "pids").exists() else []:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
    _assert_nothing_left(run_dir)
    _assert_ports_free(_ports(run_dir, dns_port))
