"""`healthplane aggregator` and `healthplane query` as real processes."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from healthplane.aggregator.snapshot_file import read_snapshot_file

CHECKS = """\
checks:
  - {id: web-1, type: tcp, host: 127.0.0.1, port: 1, interval: 5}
  - {id: web-2, type: tcp, host: 127.0.0.1, port: 2, interval: 5, inverted: true}
  - {id: maint, type: tcp, host: 127.0.0.1, port: 3, interval: 5, disabled: true}
"""
FLEET = """\
regions:
  us-east: [use1-a]
  eu-west: [euw1-a]
aggregators: ["127.0.0.1:7000"]
report_interval: 0.5
tick: 0.2
stale_after: 1.0
allow_private_targets: true
"""


def healthplane(*args: str) -> list[str]:
    return [sys.executable, "-m", "healthplane", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A running `healthplane aggregator` with its stderr collected line by line."""

    def __init__(self, argv: list[str]) -> None:
        self.p = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  text=True, cwd=Path(__file__).resolve().parents[2])
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.p.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no {pattern!r} in aggregator output:\n" + "\n".join(self.seen))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "checks.yaml").write_text(CHECKS)
    (tmp_path / "fleet.yaml").write_text(FLEET)
    return tmp_path


@pytest.fixture
def aggregator(config: Path) -> Iterator[tuple[Proc, int]]:
    proc = Proc(healthplane("aggregator", "--checks", str(config / "checks.yaml"),
                            "--fleet", str(config / "fleet.yaml"), "--listen", "127.0.0.1:0",
                            "--snapshot-file", str(config / "snap.msgpack"),
                            "--reload-interval", "0"))
    try:
        m = proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
        yield proc, int(m.group(1))
    finally:
        if proc.p.poll() is None:
            proc.p.send_signal(signal.SIGTERM)
            try:
                proc.p.wait(10)
            except subprocess.TimeoutExpired:
                proc.p.kill()
                proc.p.wait()


def query(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(healthplane("query", *args), capture_output=True, text=True,
                          timeout=30)


def test_query_table_detail_and_unknown_id(aggregator):
    proc, port = aggregator
    target = f"127.0.0.1:{port}"
    r = query("--aggregator", target)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.match(r"registry \S+  tick \d+", lines[0])
    assert lines[1].split() == ["CHECK", "STATUS", "VOTES", "LAST_CHANGE", "AGO"]
    # Nothing reports to it: every check is never seen, hence healthy (even inverted).
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:]}
    assert rows == {"web-1": ["healthy", "0/0", "never", "-"],
                    "web-2": ["healthy", "0/0", "never", "-"],
                    "maint": ["healthy", "0/0", "never", "-"]}

    r = query("--aggregator", target, "--checkers", "web-2")
    assert r.returncode == 0, r.stderr
    detail = [ln.split() for ln in r.stdout.splitlines()[3:]]
    assert detail == [["use1-a", "us-east", "unknown", "-", "-", "-", "-"],
                      ["euw1-a", "eu-west", "unknown", "-", "-", "-", "-"]]

    r = query("--aggregator", target, "web-1", "nope")
    assert r.returncode == 1
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1
    assert "'nope'" in r.stderr and "Traceback" not in r.stderr

    # The snapshot file follows the ticks once the warm-up (one stale_after,
    # as no checker reports) is over.
    path = str(proc.p.args[proc.p.args.index("--snapshot-file") + 1])
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    snap = read_snapshot_file(path)
    assert snap["check_ids"] == ["web-1", "web-2", "maint"] and snap["sequence"] >= 1


def test_query_against_nothing_fails_fast_with_one_line():
    port = free_port()
    t0 = time.monotonic()
    r = query("--aggregator", f"127.0.0.1:{port}", "--timeout", "1")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert f"cannot reach aggregator at 127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - t0 < 15


def test_query_bad_address_is_an_error_not_unhealthy():
    # Exit 2 means "a named check is not healthy"; every error is 1.
    for args in (("--aggregator", "nonsense"), ("--no-such-flag",), ()):
        r = query(*args)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, (args, r.stderr)


def test_sighup_reloads_a_valid_config_and_refuses_a_bad_one(aggregator, config):
    proc, port = aggregator
    target = f"127.0.0.1:{port}"
    (config / "checks.yaml").write_text(CHECKS + "  - {id: new-1, type: tcp, host: 127.0.0.1,"
                                        " port: 4, interval: 5}\n")
    proc.p.send_signal(signal.SIGHUP)
    proc.wait_for(r"registry adopted")
    deadline = time.monotonic() + 10
    while True:
        r = query("--aggregator", target, "new-1")
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.returncode == 0, r.stderr
    (config / "checks.yaml").write_text("checks:\n  - {id: broken, type: tcp}\n")
    proc.p.send_signal(signal.SIGHUP)
    proc.wait_for(r"reload rejected.*checks\.yaml")
    assert query("--aggregator", target, "new-1").returncode == 0


def test_sigterm_stops_cleanly(aggregator):
    proc, _ = aggregator
    proc.p.send_signal(signal.SIGTERM)
    assert proc.p.wait(10) == 0


def test_bad_config_is_one_line_per_problem_and_exit_1(config):
    (config / "checks.yaml").write_text("checks:\n  - {id: x, type: tcp, host: 127.0.0.1}\n")
    r = subprocess.run(healthplane("aggregator", "--checks", str(config / "checks.yaml"),
                                   "--fleet", str(config / "fleet.yaml"),
                                   "--listen", "127.0.0.1:0"),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert all(ln.startswith("healthplane aggregator: ") for ln in r.stderr.splitlines())
    assert "checks.yaml" in r.stderr


def test_port_in_use_is_a_one_line_error(config):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(healthplane("aggregator", "--checks", str(config / "checks.yaml"),
                                       "--fleet", str(config / "fleet.yaml"),
                                       "--listen", f"127.0.0.1:{port}"),
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"healthplane aggregator: cannot listen on 127.0.0.1:{port}: Address already in use"]


