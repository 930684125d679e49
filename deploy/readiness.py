"""Waiting until a process the launcher started is ready, or saying why not."""

from __future__ import annotations

import time
from collections.abc import Callable

from healthplane.deploy.processes import Proc

__all__ = ["LaunchError", "wait_ready"]


class LaunchError(RuntimeError):
    """A process of the fleet failed to start or to become ready (one line, names the log)."""


def wait_ready(proc: Proc, ready: Callable[[], object], what: str, timeout: float) -> None:
    """Poll ready() until it is true; LaunchError, with the log's last lines,
    when proc exits first or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise LaunchError(f"{proc.name} exited during start "
                              f"(see {proc.log}): {proc.tail()}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise LaunchError(f"{proc.name} not {what} after {timeout:.0f} s "
                              f"(see {proc.log}): {proc.tail()}")
        time.sleep(0.1)
