"""Processes the launcher starts, and how it stops them, leaving none behind.

Each process is started in a new session, so its pid is also the id of a
process group that holds everything it spawns; stopping the group stops
grandchildren too, and Ctrl-C in the terminal reaches only the launcher,
which then stops its processes in order. Every child's environment names
the run directory, so :func:`leftover_pids` can prove nothing stayed behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from healthplane.runtime.parent import PARENT_FD_ENV

RUN_DIR_ENV = "HEALTHPLANE_RUN_DIR"   # set in every child's environment, so leftovers are findable
RUN_TOKEN_ENV = "HEALTHPLANE_RUN_TOKEN"   # tells apart two launchers sharing a run directory


@dataclass
class Proc:
    """One process the launcher started; pid is also its process group id."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


def spawn(name: str, argv: list[str], run_dir: Path, token: str = "",
          parent_fd: int | None = None) -> Proc:
    """Start argv in its own session, output to RUN_DIR/NAME.log, pid noted in RUN_DIR/pids.

    parent_fd: the read end of the launcher's lifeline pipe
    (:func:`healthplane.runtime.parent.parent_pipe`), handed to the child so it
    stops when the launcher ends, even by SIGKILL.
    """
    log = run_dir / f"{name}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env[RUN_DIR_ENV] = str(run_dir)
    env[RUN_TOKEN_ENV] = token
    env.pop(PARENT_FD_ENV, None)
    pass_fds: tuple[int, ...] = ()
    if parent_fd is not None:
        env[PARENT_FD_ENV] = str(parent_fd)
        pass_fds = (parent_fd,)
    with open(log, "ab") as out:
        out.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                 pass_fds=pass_fds)
    with (run_dir / "pids").open("a") as pids:
        pids.write(f"{popen.pid} {name}\n")
    return Proc(name, argv, log, popen)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, as Ctrl-C does.

    A program that runs a Fleet in a ``with`` block calls this once, so that
    ``kill PID`` or closing its terminal unwinds the block and stops every
    process like Ctrl-C would. (Should the program die before it can, the
    children still notice through the lifeline pipe and stop themselves.)
    """
    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


def stop_all(procs: Sequence[Proc], grace: float) -> None:
    """SIGTERM every process group, wait up to grace, then SIGKILL what is left."""
    live = [p for p in procs if p.alive()]
    for p in live:
        _killpg(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in live:
        assert p.popen is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        # Also catches grandchildren still in the group after their leader exited.
        _killpg(p, signal.SIGKILL)
        if p.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=5)


def signal_and_reap(proc: Proc, sig: int, grace: float) -> None:
    """Send sig to proc's group and wait for it; SIGKILL the group after grace."""
    _killpg(proc, sig)
    if proc.popen is not None:
        try:
            proc.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _killpg(proc, signal.SIGKILL)
            proc.popen.wait(timeout=5)
        _killpg(proc, signal.SIGKILL)


def _killpg(proc: Proc, sig: int) -> None:
    if proc.pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def leftover_pids(run_dir: str | Path, token: str | None = None) -> list[int]:
    """Live processes whose environment names run_dir (and token, if given):
    what a fleet left behind."""
    marker = f"{RUN_DIR_ENV}={Path(run_dir)}".encode()
    token_marker = f"{RUN_TOKEN_ENV}={token}".encode() if token is not None else None
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        entries = env.split(b"\0")
        if state != "Z" and marker in entries and (token_marker is None
                                                   or token_marker in entries):
            found.append(int(entry.name))
    return found
