"""Every process a launched fleet started, and stopping them all on every way out.

Each process gets its own process group (see deploy.processes) and watches
a lifeline pipe (healthplane.runtime.parent): when the launcher ends in any
way, even SIGKILL, the kernel closes the write end and the children stop
themselves. stop() is also registered with atexit, the last line of
defence when a caller forgets it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import uuid
from pathlib import Path

from healthplane.deploy.processes import Proc, leftover_pids, spawn, stop_all
from healthplane.deploy.readiness import LaunchError

from healthplane.runtime.parent import parent_pipe

__all__ = ["ProcessGroup"]


class ProcessGroup:
    """The processes started into one run folder; stop() ends them all, once."""

    def __init__(self, run_dir: Path, grace: float) -> None:
        self.run_dir, self.grace = run_dir, grace
        self._lock = threading.Lock()
        self.stopped = False
        self._started: list[Proc] = []      # every process ever started, for stop()
        self._atexit = False
        # Every child's environment names this run, so even one started
        # but not yet on the list can be found.
        self._token = uuid.uuid4().hex
        self._lifeline: tuple[int, int] | None = None

    def spawn(self, name: str, argv: list[str]) -> Proc:
        if self.stopped:
            raise LaunchError("fleet already stopped")
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        if self._lifeline is None:
            self._lifeline = parent_pipe()
        proc = spawn(name, argv, self.run_dir, self._token, parent_fd=self._lifeline[0])
        self._started.append(proc)
        return proc

    def stop(self) -> None:
        """Stop every process started; safe to call twice and from atexit."""
        with self._lock:
            if self.stopped:
                return
            self.stopped = True
        # A second Ctrl-C (or a SIGTERM, or the terminal closing) must not
        # interrupt the cleanup half way.
        old: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            old = {sig: signal.signal(sig, signal.SIG_IGN)
                   for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            stop_all(self._started, self.grace)
            # A Ctrl-C between fork and bookkeeping leaves a child off the list;
            # its environment still names this run, so find it that way.
            for pid in leftover_pids(self.run_dir, self._token):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
            atexit.unregister(self.stop)
            if self._lifeline is not None:
                for fd in self._lifeline:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._lifeline = None
