"""Hostile config files, through real processes: one line, quickly, bounded memory.

A FIFO, /dev/zero and a 1.5 GB (sparse) file in place of a config file:
``validate`` and a start refuse each with one line; a running checker or
aggregator refuses each on reload, keeps serving its old configuration,
and adopts a good file afterwards (nothing wedged, nothing grown).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from tests.aggregator.test_cli import CHECKS, FLEET, Proc, healthplane
from tests.checker.helpers import closed_port

pytestmark = pytest.mark.timeout(120)
BIG = 1536 << 20
# Peak RSS allowed for a checker or an aggregator of three checks that was
# offered each hostile file: far below what reading any of them would cost.
RSS_LIMIT_KB = 300 << 10


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def make_big(path: Path) -> None:
    with path.open("wb") as f:
        f.truncate(BIG)


HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (make_fifo, "cannot read: is a FIFO, not a regular file"),
    "dev-zero": (make_zero, "cannot read: is a character device, not a regular file"),
    "sparse-1.5GB": (make_big, "larger than 256 MiB; is it the right file?"),
}


def put(path: Path, kind: str) -> None:
    """Replace path with a hostile file of kind."""
    path.unlink(missing_ok=True)
    HOSTILE[kind][0](path)


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("which", ["checks.yaml", "checks.json", "fleet.yaml"])
def test_validate_refuses_with_one_line(tmp_path, kind, which):
    checks, fleet = tmp_path / "checks.yaml", tmp_path / "fleet.yaml"
    checks.write_text(CHECKS)
    fleet.write_text(fleet_text())
    target = tmp_path / which
    put(target, kind)
    args = [str(target if which != "fleet.yaml" else checks), "--fleet", str(fleet)]
    started = time.monotonic()
    done = subprocess.run(healthplane("validate", *args), capture_output=True, text=True,
                          timeout=30)
    took = time.monotonic() - started
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"{target}: {HOSTILE[kind][1]}"]
    assert took < 10          # interpreter start included; the refusal itself is instant


def fleet_text() -> str:
    # Nothing listens on the port: this checker must not report to anyone's aggregator.
    return FLEET.replace("127.0.0.1:7000", f"127.0.0.1:{closed_port()}")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    checks, fleet = tmp_path / "checks.yaml", tmp_path / "fleet.yaml"
    checks.write_text(CHECKS)
    fleet.write_text(fleet_text())
    return checks, fleet


def stop(proc: Proc) -> None:
    if proc.p.poll() is None:
        proc.p.send_signal(signal.SIGTERM)
        try:
            proc.p.wait(10)
        except subprocess.TimeoutExpired:
            proc.p.kill()
            proc.p.wait()


def offer_each_hostile_file(proc: Proc, path: Path, still_serving: Callable[[], None]) -> None:
    """Put every hostile file in place of path and SIGHUP: each refused quickly."""
    for kind, (_, message) in HOSTILE.items():
        put(path, kind)
        for attempt in range(2):          # a second reload is not wedged by the first
            started = time.monotonic()
            proc.p.send_signal(signal.SIGHUP)
            proc.wait_for(f"reload rejected.*{path}: {message}", timeout=5)
            assert time.monotonic() - started < 5, (kind, attempt)
            still_serving()
    assert peak_rss_kb(proc.p.pid) < RSS_LIMIT_KB


@pytest.fixture
def checker(files: tuple[Path, Path]) -> Iterator[Proc]:
    checks, fleet = files
    proc = Proc(healthplane("checker", "--checks", str(checks), "--fleet", str(fleet),
                            "--id", "use1-a", "--reload-period", "0", "-v"))
    try:
        proc.wait_for("started")
        yield proc
    finally:
        stop(proc)


@pytest.mark.parametrize("which", ["checks", "fleet"])
def test_a_running_checker_refuses_them_and_keeps_running(checker, files, which):
    checks, fleet = files
    path = checks if which == "checks" else fleet

    def alive() -> None:
        assert checker.p.poll() is None

    offer_each_hostile_file(checker, path, alive)
    path.unlink()
    path.write_text(CHECKS + "  - {id: web-9, type: tcp, host: 127.0.0.1, port: 9}\n"
                    if which == "checks" else fleet_text().replace("0.5", "0.4"))
    checker.p.send_signal(signal.SIGHUP)
    checker.wait_for("reload adopted", timeout=60)


@pytest.fixture
def aggregator(files: tuple[Path, Path]) -> Iterator[tuple[Proc, int]]:
    checks, fleet = files
    proc = Proc(healthplane("aggregator", "--checks", str(checks), "--fleet", str(fleet),
                            "--listen", "127.0.0.1:0", "--reload-period", "0"))
    try:
        m = proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
        yield proc, int(m.group(1))
    finally:
        stop(proc)


def health(port: int) -> pb.HealthSnapshot:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return pb_grpc.HealthStub(channel).Get(pb.GetRequest(), timeout=5)


@pytest.mark.parametrize("which", ["checks", "fleet"])
def test_a_running_aggregator_refuses_them_and_keeps_serving(aggregator, files, which):
    proc, port = aggregator
    checks, fleet = files
    path = checks if which == "checks" else fleet
    version = health(port).registry_version

    def serving() -> None:
        got = health(port)
        assert got.registry_version == version and got.sequence >= 1

    offer_each_hostile_file(proc, path, serving)
    path.unlink()
    path.write_text(CHECKS + "  - {id: web-9, type: tcp, host: 127.0.0.1, port: 9}\n"
                    if which == "checks" else fleet_text().replace("tick: 0.2", "tick: 0.25"))
    proc.p.send_signal(signal.SIGHUP)
    proc.wait_for("registry adopted", timeout=60)
    if which == "checks":                 # published from the next tick on
        deadline = time.monotonic() + 10
        while health(port).registry_version == version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health(port).registry_version != version


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("component", ["checker", "aggregator"])
def test_a_start_refuses_them_with_one_line(files, kind, component):
    checks, fleet = files
    put(checks, kind)
    extra = ["--id", "use1-a"] if component == "checker" else ["--listen", "127.0.0.1:0"]
    done = subprocess.run(healthplane(component, "--checks", str(checks), "--fleet", str(fleet),
                                      *extra), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"healthplane {component}: {checks}: {HOSTILE[kind][1]}"]
