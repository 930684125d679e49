"""Zone reload for the DNS front and the PowerDNS backend, on the shared reloader.

The reloading itself (period, SIGHUP, fingerprint, timeouts, keeping the
running zone on failure, logging and counting) is
:mod:`healthplane.runtime.reload`. What is the zone's own is here: the taste
(principle 7) that runs in the throw-away child process. It loads zone.yaml
(against checks.yaml when given), builds every answer of the zone twice,
with every value healthy and with every value unhealthy, and renders its
zone transfer; only a zone that passed all of that comes back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from healthplane.proto.config.model import Zone

from healthplane.runtime.clock import Clock
from healthplane.runtime.files import Fingerprint
from healthplane.runtime.reload import Reloader, run_in_child

log = logging.getLogger("healthplane.dns.reload")


def _everything(state: int) -> Callable[[str], int]:
    """A health function that says state for every check."""
    return lambda _check_id: state


def taste_zone(zone_path: str, checks_path: str | None) -> Zone:
    """In the child: the zone, loaded and exercised; raises ConfigError when it is bad."""
    from healthplane.proto import codec
    from healthplane.proto.config.loader import load_checks, load_zone

    from .build import build_answers
    from .transfer import zone_rrsets

    registry = load_checks(checks_path, allow_private_targets=True) if checks_path else None
    zone = load_zone(zone_path, registry)
    for state in (codec.HEALTHY, codec.UNHEALTHY):
        zone_rrsets(build_answers(zone, _everything(state), serial=1))
    return zone


class ZoneFiles:
    """zone.yaml (and the checks.yaml its check ids are verified against) on disk."""

    def __init__(self, zone: str, checks: str | None = None) -> None:
        self.zone, self.checks = zone, checks
        self.fingerprint = Fingerprint([p for p in (zone, checks) if p is not None])

    def load(self) -> Zone:
        """Load and taste in a fresh process (blocking; the reloader runs it in a thread)."""
        return run_in_child(taste_zone, self.zone, self.checks)


def zone_reloader(files: ZoneFiles, adopt: Callable[[Zone], object],
                  current: Callable[[], Zone], counts: Counter[str], *,
                  clock: Clock, period: float) -> Reloader[Zone]:
    """A reloader of ``files`` that hands a changed zone to ``adopt``.

    ``current`` is the zone being served: the same zone again is "unchanged".
    Results land in ``counts`` ("adopted", "unchanged", "failed").
    """
    def take(zone: Zone) -> bool:
        if zone == current():
            return False
        adopt(zone)
        return True

    try:
        running: bytes | None = files.fingerprint()
    except Exception:  # noqa: BLE001 - unreadable now: the first reload says why
        running = None
    return Reloader("zone", files.load, take, clock=clock, period=period,
                    count=lambda result: counts.update([result]),
                    fingerprint=files.fingerprint, running=running, logger=log)
