"""A tasting child never outlives the component that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TASTE = '''
import os, time
def slow(path):
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(60)
'''

PARENT = '''
import sys
sys.path.insert(0, {folder!r})
from healthplane.runtime.reload import run_in_child
from slow_taste import slow
if __name__ == "__main__":
    run_in_child(slow, {pidfile!r}, timeout=120)
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_component_takes_its_tasting_child_with_it(tmp_path: Path) -> None:
    (tmp_path / "slow_taste.py").write_text(TASTE)
    pidfile = tmp_path / "child.pid"
    (tmp_path / "component.py").write_text(PARENT.format(folder=str(tmp_path),
                                                         pidfile=str(pidfile)))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "component.py")])
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists():
            assert proc.poll() is None, "the component ended before tasting"
            assert time.monotonic() < deadline, "the tasting child never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert _alive(child)
        os.kill(proc.pid, signal.SIGKILL)      # no handler, no atexit: only the kernel acts
        proc.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the tasting child outlived its component"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
