"""Keeps the DNS front's answers in step with the health snapshots.

:class:`AnswerKeeper` rebuilds the whole :class:`~aggregator.dns.answers.AnswerTable`
once per adopted snapshot (never per query) and hands it to the front, which
swaps it in whole. It also decides when data is too old to trust.

Fail open on stale data: once the freshest snapshot is older than
``stale_after`` seconds (every aggregator unreachable or stuck), every check
is treated as unknown, which the answer rules count as healthy, so each
record answers all its values, as Route 53 does when it cannot tell. Until
then the last known health is kept. ``stale_after=0`` keeps the last known
health forever. Before the first snapshot nothing is published (the front
answers SERVFAIL); if none arrives within ``stale_after`` of the start, the
keeper fails open then, as for data that old.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

from healthplane.proto import codec
from healthplane.proto.config.model import Zone

from healthplane.runtime.clock import Clock
from healthplane.runtime.grid import GridLoop

from .answers import AnswerTable, StatusFn
from .apex import SerialClock
from .build import ChoiceCache, build_answers
from .consumer import HealthConsumer, Snapshot

log = logging.getLogger(__name__)


def _unknown(_check_id: str) -> int:
    return codec.UNKNOWN


def _checks_of(zone: Zone) -> set[str]:
    return {v.check for r in zone.records for v in (*r.values, r.primary, r.secondary)
            if v is not None and v.check is not None}


class AnswerKeeper:
    """Rebuilds answers per snapshot and applies the stale-data rule."""

    def __init__(self, zone: Zone, consumer: HealthConsumer,
                 on_table: Callable[[AnswerTable], None], *,
                 stale_after: float = 30.0, nameservers: Sequence[str] = (),
                 clock: Clock | None = None, serials: SerialClock | None = None) -> None:
        self.zone = zone
        self.consumer = consumer
        self.on_table = on_table
        self.stale_after = stale_after
        self.clock: Clock = clock or consumer.clock
        self._started = self.clock.now()
        self.nameservers = tuple(nameservers)
        self.serials = serials or SerialClock()
        self.cache = ChoiceCache()
        self.rebuilds = 0
        self.reloads: Counter[str] = Counter()   # zone reloads by result, for metrics
        self.failing_open = False
        self.table = self._build(_unknown)
        self._unsubscribe: Callable[[], None] | None = None
        self._version_seen: str | None = None
        self._zone_checks = _checks_of(zone)

    def adopt_zone(self, zone: Zone) -> AnswerTable:
        """Serve ``zone`` from now on (a reload that passed tasting); returns the new table."""
        self.zone = zone
        self.cache = ChoiceCache()
        self._zone_checks = _checks_of(zone)
        self._version_seen = None      # warn again about checks the registry lacks
        return self.rebuild()

    def _build(self, status: StatusFn) -> AnswerTable:
        table = build_answers(self.zone, status, serial=self.serials.serial,
                              nameservers=self.nameservers, cache=self.cache)
        if self.serials.advance(table.signature()) and table.serial != self.serials.serial:
            # An answer changed: the SOA serial moves with it (every answer comes
            # from the cache this time; only the apex is rendered again).
            table = build_answers(self.zone, status, serial=self.serials.serial,
                                  nameservers=self.nameservers, cache=self.cache)
        self.rebuilds += 1
        return table

    def is_stale(self) -> bool:
        age = self.consumer.age()
        if age is None:
            # Nothing at all for stale_after since start is as stale as data
            # that old: fail open rather than SERVFAIL forever.
            age = self.clock.now() - self._started
        return self.stale_after > 0 and age > self.stale_after

    def _check_stale(self) -> None:
        if self.is_stale() != self.failing_open:
            self.rebuild()

    def rebuild(self, snapshot: Snapshot | None = None) -> AnswerTable:
        """Build from ``snapshot`` (default: the consumer's freshest) and publish."""
        snap = snapshot or self.consumer.snapshot
        stale = self.is_stale()
        if stale != self.failing_open:
            self.failing_open = stale
            if stale:
                log.warning("health snapshot too old: failing open, every value served",
                            extra={"stale_after_s": self.stale_after})
            else:
                log.warning("fresh health snapshot again: answers follow health")
        if snap is not None and snap.registry_version != self._version_seen:
            self._version_seen = snap.registry_version
            missing = sorted(self._zone_checks - snap.index.keys())
            if missing:
                log.warning("zone checks not in the registry, answered as healthy", extra={
                    "registry": snap.registry_version, "missing": len(missing),
                    "checks": ",".join(missing[:10])})
        status = _unknown if stale or snap is None else snap.status
        self.table = self._build(status)
        self.on_table(self.table)
        return self.table

    async def run(self) -> None:
        """Rebuild on every snapshot, and when the stale rule flips; until cancelled."""
        self._unsubscribe = self.consumer.add_listener(self.rebuild)
        # Checked on a fixed grid, a quarter of stale_after apart (at most
        # 1 s), so failing open is late by at most that much.
        period = min(1.0, self.stale_after / 4) if self.stale_after > 0 else 1.0
        grid = GridLoop(self._check_stale, period, self.clock, run_at_start=False)
        try:
            await grid.run()
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
