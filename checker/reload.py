"""Re-read checks.yaml and fleet.yaml on a fixed period and on SIGHUP.

A new version is adopted only when it loads and validates and still names
this checker; otherwise the running configuration stays and the error is
logged and counted (``healthplane_checker_config_reloads_total{result="failed"}``).
A file that did not change is not re-adopted, so the schedule is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from checker.clock import Clock
from checker.metrics import CheckerMetrics
from proto.config.errors import ConfigError
from proto.config.model import Fleet, Registry

log = logging.getLogger("healthplane.checker")

Loader = Callable[[], tuple[Registry, Fleet]]


class Reloader:
    """Loads with `load` (in a worker thread) and hands good configs to `adopt`.

    `current` returns the running (registry, fleet); `adopt` (a function or
    a coroutine function) may raise ValueError to refuse a config (e.g. this
    checker is not in the fleet).
    """

    def __init__(self, load: Loader, current: Callable[[], tuple[Registry, Fleet]],
                 adopt: Callable[[Registry, Fleet], Awaitable[None] | None], *,
                 period: float, clock: Clock, metrics: CheckerMetrics) -> None:
        self._load = load
        self._current = current
        self._adopt = adopt
        self.period = period
        self.clock = clock
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._stopped = False

    def trigger(self) -> None:
        """Reload now (the SIGHUP handler)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    async def reload_once(self) -> str:
        """One attempt: returns "adopted", "unchanged" or "failed"."""
        try:
            # Parsing a large registry takes a while; a thread keeps the
            # probe schedule running meanwhile.
            registry, fleet = await asyncio.to_thread(self._load)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload rejected: %s", line)
            return self._count("failed")
        except Exception as exc:  # never let a reload take the checker down
            log.error("reload failed: %s: %s", type(exc).__name__, exc)
            return self._count("failed")
        old_registry, old_fleet = self._current()
        if registry.version == old_registry.version and fleet == old_fleet:
            return self._count("unchanged")
        try:
            pending = self._adopt(registry, fleet)
            if pending is not None:
                await pending
        except ValueError as exc:
            log.error("reload rejected: %s", exc)
            return self._count("failed")
        log.info("reload adopted registry=%s checks=%d (was registry=%s)",
                    registry.version, registry.check_count, old_registry.version)
        return self._count("adopted")

    def _count(self, result: str) -> str:
        self.metrics.config_reloads.labels(result).inc()
        return result

    async def run(self) -> None:
        """Reload every `period` seconds (fixed schedule) and whenever triggered."""
        start = self.clock.now()
        k = 1
        while not self._stopped:
            sleeper = asyncio.ensure_future(self.clock.sleep_until(start + k * self.period))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            self._wake.clear()
            if self._stopped:
                return
            await self.reload_once()
            now = self.clock.now()
            while start + k * self.period <= now:
                k += 1
