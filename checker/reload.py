"""What a checker reloads, and how it tastes a new configuration.

The reloading itself (period, SIGHUP, fingerprint, timeouts, keeping the
running configuration on failure) is healthplane.runtime.reload. A changed
checks file and fleet file are loaded in a throw-away child process, which
builds a whole (not running) checker from them, ownership, schedule and
probers, and builds snapshots at the new fleet's report_interval for a few
cycles; only a configuration that passed comes back. A configuration that
no longer names this checker is refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Fleet, Registry

from healthplane.runtime.files import Fingerprint
from healthplane.runtime.reload import run_in_child, taste_cadence

if TYPE_CHECKING:
    from healthplane.checker.runner import Checker

Config = tuple[Registry, Fleet]
log = logging.getLogger("healthplane.checker")


async def adopt_into(checker: Checker, new: Config) -> bool:
    """Switch checker to a tasted configuration; False when it is the running one.

    Raises UnknownChecker when the new fleet does not name this checker.
    """
    registry, fleet = new
    old = checker.registry
    if registry.version == old.version and fleet == checker.fleet:
        return False
    await checker.adopt_async(registry, fleet)
    log.info("registry adopted", extra={"registry": registry.version,
                                        "checks": registry.check_count, "was": old.version})
    return True


def taste(registry: Registry, fleet: Fleet, checker_id: str) -> None:
    """Build a whole (not running) checker and report at the fleet's cadence.

    Raises if it cannot."""
    from healthplane.checker.runner import Checker

    checker = Checker(registry, fleet, checker_id)
    taste_cadence(lambda _: checker.report_once(), fleet.report_interval, "report_interval")


def load_config_files(checks: str, fleet_path: str, checker_id: str) -> Config:
    """Load both files for checker_id; one-line ConfigErrors."""
    from healthplane.proto.config.loader import load_config

    registry, fleet, _ = load_config(checks, fleet_path)
    if fleet is None:  # pragma: no cover - a fleet path is always given
        raise ConfigError([f"{fleet_path}: no fleet"])
    if fleet.region_of(checker_id) is None:
        raise ConfigError([f"{fleet_path}: checker id {checker_id!r} is not in the fleet any more"])
    return registry, fleet


def load_and_taste(checks: str, fleet_path: str, checker_id: str) -> Config:
    """In the child process: the configuration, tasted."""
    registry, fleet = load_config_files(checks, fleet_path, checker_id)
    taste(registry, fleet, checker_id)
    return registry, fleet


class FileConfig:
    """checks file + fleet file on disk, for one checker id."""

    def __init__(self, checks: str, fleet: str, checker_id: str) -> None:
        self.checks, self.fleet, self.checker_id = checks, fleet, checker_id
        self.fingerprint = Fingerprint([checks, fleet])

    def load_here(self) -> Config:
        """Load in this process (at startup, before anything runs)."""
        from healthplane.proto.config.loader import load_config

        registry, fleet, _ = load_config(self.checks, self.fleet)
        if fleet is None:  # pragma: no cover - a fleet path is always given
            raise ConfigError([f"{self.fleet}: no fleet"])
        return registry, fleet

    def load(self) -> Config:
        """Load and taste in a fresh child process (blocking; call from a thread)."""
        return run_in_child(load_and_taste, self.checks, self.fleet, self.checker_id)
