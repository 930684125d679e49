"""What an aggregator reloads, and how it tastes a new configuration.

The reloading itself (period, SIGHUP, fingerprint, timeouts, keeping the
running configuration on failure) is healthplane.runtime.reload. A changed
checks file and fleet file are loaded in a throw-away child process that
runs real ticks of the new configuration at the new fleet's tick (principle
7: taste before you serve); only the validated result comes back.

Adopting keeps the registry being replaced as the "previous" version, so
checkers that have not reloaded yet are remapped by check id instead of
being dropped, and every check in both registries keeps, by id, its last
known status and last change time; the tick sequence goes on growing (see
:meth:`healthplane.aggregator.server.Aggregator.adopt`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Fleet, Registry

from healthplane.runtime.files import Fingerprint
from healthplane.runtime.reload import run_in_child, taste_cadence

if TYPE_CHECKING:
    from healthplane.aggregator.server import Aggregator

Config = tuple[Registry, Fleet]
log = logging.getLogger("healthplane.aggregator.reload")


def adopt_into(agg: Aggregator, new: Config) -> bool:
    """Hand a tasted configuration to the aggregator; False when it is the running one.

    Raises ReloadRefused when this process cannot take it without a restart.
    """
    registry, fleet = new
    old = agg.state.registry
    if not agg.adopt(registry, fleet):
        return False
    log.info("registry adopted", extra={"registry": registry.version,
                                        "checks": registry.check_count,
                                        "checkers": len(fleet.checker_ids), "was": old.version})
    return True


def taste(registry: Registry, fleet: Fleet) -> None:
    """Real ticks of a configuration on empty slots, at its tick; raises if it cannot."""
    from healthplane.aggregator.state import AggregatorState

    from healthplane.runtime.clock import SystemClock

    state = AggregatorState(registry, fleet, SystemClock())
    taste_cadence(lambda _cycle: state.tick(), fleet.tick, "tick")


def load_and_taste(checks: str, fleet_path: str) -> Config:
    """In the child process: both files loaded, and tasted."""
    from healthplane.proto.config.loader import load_config

    registry, fleet, _ = load_config(checks, fleet_path)
    if fleet is None:  # pragma: no cover - a fleet path is always given
        raise ConfigError([f"{fleet_path}: no fleet"])
    taste(registry, fleet)
    return registry, fleet


class FileSource:
    """checks file + fleet file on disk, loaded and tasted in a child process."""

    def __init__(self, checks: str, fleet: str) -> None:
        self.checks, self.fleet = checks, fleet
        self.fingerprint = Fingerprint([checks, fleet])

    def load(self) -> Config:
        """Load and taste in a fresh process (blocking; call from a thread)."""
        return run_in_child(load_and_taste, self.checks, self.fleet)
