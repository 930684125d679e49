"""Running deploy.targets beside a launched fleet, and steering it.

The targets process serves every loopback target of checks.yaml and takes
targets down and up on a small HTTP control API (see deploy.targets);
these are that API's client calls and the process's command line.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from healthplane.deploy.readiness import LaunchError

__all__ = ["TargetsControl", "TargetsOptions", "set_target", "target_state", "targets_argv"]


@dataclass
class TargetsOptions:
    """How to run deploy.targets alongside the fleet (targets of checks.yaml)."""

    flap: Sequence[str] = ()
    hang: Sequence[str] = ()
    skip: Sequence[str] = ()
    down_seconds: float = 20.0
    period: float = 60.0
    first_down: float = 15.0
    control: str | None = None          # HOST:PORT; None: a free port


def targets_argv(checks: Path, control: str, options: TargetsOptions) -> list[str]:
    """The command line of the targets process for checks, controlled on control."""
    o = options
    args = ["--checks", str(checks), "--control", control,
            "--down-seconds", str(o.down_seconds), "--period", str(o.period),
            "--first-down", str(o.first_down)]
    for flag, ids in (("--flap", o.flap), ("--hang", o.hang), ("--skip", o.skip)):
        for tid in ids:
            args += [flag, tid]
    return [sys.executable, "-m", "healthplane.deploy.targets", *args]


def set_target(control: str, op: str, target_id: str) -> None:
    """op ("down" or "up") one target, or "*" for every target."""
    url = f"http://{control}/{op}/{target_id}"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):
        pass


def target_state(control: str) -> dict[str, dict[str, object]]:
    """Every target's state as the control API reports it."""
    with urllib.request.urlopen(f"http://{control}/state", timeout=5) as r:
        return dict(json.load(r))


class TargetsControl:
    """A launched fleet's hold on its targets process (see deploy.launcher.Fleet)."""

    targets_control: str | None       # HOST:PORT of the control API; None: no targets

    def target_down(self, target_id: str) -> None:
        """Take a target down ("*": every target) through the targets control API."""
        set_target(self._need_control(), "down", target_id)

    def target_up(self, target_id: str) -> None:
        set_target(self._need_control(), "up", target_id)

    def target_state(self) -> dict[str, dict[str, object]]:
        return target_state(self._need_control())

    def _need_control(self) -> str:
        if self.targets_control is None:
            raise LaunchError("this fleet runs no targets")
        return self.targets_control
