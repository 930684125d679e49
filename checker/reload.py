"""Re-read checks.yaml and fleet.yaml on a fixed period and on SIGHUP.

A new version is adopted only when it loads and validates and still names
this checker; otherwise the running configuration stays and the error is
logged and counted (``healthplane_checker_config_reloads_total{result="failed"}``).
A file that did not change is not re-adopted, so the schedule is left alone.

With a ``fingerprint`` (a cheap digest of the files' bytes), files whose
bytes did not change since the last attempt are not even parsed again:
parsing 100,000 checks takes seconds of CPU, and a periodic reload must not
cost the probe schedule that every period.
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
                 period: float, clock: Clock, metrics: CheckerMetrics,
                 fingerprint: Callable[[], bytes] | None = None,
                 running_digest: bytes | None = None) -> None:
        self._load = load
        self._fingerprint = fingerprint
        # (fingerprint, outcome) of the last load; running_digest is the
        # fingerprint of the files the running config came from.
        self._last: tuple[bytes, str] | None = (
            (running_digest, "adopted") if running_digest is not None else None)
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
        digest = None
        if self._fingerprint is not None:
            try:
                digest = await asyncio.to_thread(self._fingerprint)
            except OSError:
                digest = None          # unreadable: let the loader say why
        if digest is not None and self._last is not None and self._last[0] == digest:
            if self._last[1] == "failed":
                log.error("reload rejected: files unchanged since the last failed attempt")
                return self._count("failed")
            return self._count("unchanged")
        outcome = await self._reload()
        # A refused adoption (ValueError) is remembered like a parse failure.
        self._last = (digest, outcome) if digest is not None else None
        return outcome

    async def _reload(self) -> str:
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
