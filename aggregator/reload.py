"""Config reload: re-read checks.yaml and fleet.yaml on SIGHUP and every period.

A new configuration is adopted only when it loads cleanly *and* survives a
trial tick on a throw-away state (principle 7: taste before you serve);
otherwise the running one stays, the failure is logged one line per problem
and counted. The registry being replaced stays accepted as the "previous"
version, so checkers that have not reloaded yet are remapped by check id
instead of being dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aggregator.clock import Clock, FakeClock
from aggregator.server import Aggregator, ReloadRefused
from aggregator.state import AggregatorState
from proto.config.errors import ConfigError
from proto.config.model import Fleet, Registry

log = logging.getLogger("healthplane.aggregator.reload")

Loader = Callable[[], tuple[Registry, Fleet]]


def _taste(agg: Aggregator, registry: Registry, fleet: Fleet) -> None:
    """One tick of the new configuration on empty slots; raises if the engine cannot."""
    trial = AggregatorState(registry, fleet, agg.state.kit, FakeClock())
    trial.tick(1)


class ConfigReloader:
    """Calls ``load`` and hands a new, valid configuration to the aggregator."""

    def __init__(self, agg: Aggregator, load: Loader, period: float, clock: Clock) -> None:
        self.agg = agg
        self.load = load
        self.period = period
        self.clock = clock
        self._trigger = asyncio.Event()
        self._lock = asyncio.Lock()

    def trigger(self) -> None:
        """Reload soon (the SIGHUP handler)."""
        self._trigger.set()

    async def reload_once(self, why: str = "manual") -> str:
        """Try one reload; returns "adopted", "unchanged" or "failed" (also counted)."""
        async with self._lock:
            result = await self._reload(why)
        self.agg.reloads[result] += 1
        return result

    async def _reload(self, why: str) -> str:
        try:
            registry, fleet = await asyncio.to_thread(self.load)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload (%s) rejected: %s", why, line)
            return "failed"
        except OSError as exc:
            log.error("reload (%s) rejected: %s", why, exc)
            return "failed"
        st = self.agg.state
        if registry.version == st.registry.version and fleet == st.fleet:
            return "unchanged"
        try:
            await asyncio.to_thread(_taste, self.agg, registry, fleet)
        except Exception as exc:  # the engine refused it: keep serving the old one
            log.error("reload (%s) rejected: trial tick failed: %s", why, exc)
            return "failed"
        try:
            self.agg.adopt(registry, fleet)
        except ReloadRefused as exc:
            log.error("reload (%s) rejected: %s", why, exc)
            return "failed"
        log.info("reload (%s): adopted registry version %s (%d checks, %d checkers)",
                 why, registry.version, registry.check_count, len(fleet.checker_ids))
        return "adopted"

    async def run(self) -> None:
        """Reload on trigger() and every period seconds (period <= 0: on trigger only)."""
        next_due = self.clock.now() + self.period
        while True:
            waiter = asyncio.create_task(self._trigger.wait())
            sleeper = (asyncio.create_task(self.clock.sleep_until(next_due))
                       if self.period > 0 else None)
            tasks = {waiter} | ({sleeper} if sleeper else set())
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
            why = "signal" if self._trigger.is_set() else "periodic"
            self._trigger.clear()
            await self.reload_once(why)
            if self.period > 0 and self.clock.now() >= next_due:
                # Fixed schedule; a slow reload skips slots rather than bunching them.
                while next_due <= self.clock.now():
                    next_due += self.period
