"""Re-read checks.yaml and fleet.yaml on a fixed period and on SIGHUP.

A new version is adopted only when it loads and validates and still names
this checker; otherwise the running configuration stays and the error is
logged and counted (``healthplane_checker_config_reloads_total{result="failed"}``).
A file that did not change is not re-adopted, so the schedule is left alone.

With a ``fingerprint`` (a cheap digest of the files' bytes), files whose
bytes did not change since the last attempt are not even parsed again:
parsing 100,000 checks takes seconds of CPU, and a periodic reload must not
cost the probe schedule that every period.

:class:`FileConfig` is what the command line uses: when the files did
change, it loads them *and tastes them* in a throw-away child process (it
builds a whole checker from them, ownership, schedule and probers, and one
snapshot), so neither the parse (which would hold the GIL for seconds) nor
a crash in it touches the running checker; only a configuration that
passed comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor

from healthplane.checker.metrics import CheckerMetrics
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Fleet, Registry

from healthplane.runtime.clock import Clock

log = logging.getLogger("healthplane.checker")

Loader = Callable[[], tuple[Registry, Fleet]]


def taste(registry: Registry, fleet: Fleet, checker_id: str) -> None:
    """Build a whole (not running) checker from a config and one snapshot; raises if it cannot."""
    from healthplane.checker.runner import Checker

    Checker(registry, fleet, checker_id).report_once()


def _load_and_taste(checks: str, fleet_path: str,
                    checker_id: str) -> tuple[Registry, Fleet] | list[str]:
    """In the child process: the config, or its error lines (ConfigError does not pickle whole)."""
    from healthplane.proto.config.loader import load_config

    try:
        registry, fleet, _ = load_config(checks, fleet_path)
    except ConfigError as exc:
        return list(exc.errors)
    if fleet is None or fleet.region_of(checker_id) is None:
        return [f"{fleet_path}: checker id {checker_id!r} is not in the fleet any more"]
    try:
        taste(registry, fleet, checker_id)
    except Exception as exc:  # noqa: BLE001 - any failure means "do not adopt"
        return [f"trial checker failed: {type(exc).__name__}: {exc}"]
    return registry, fleet


class FileConfig:
    """checks.yaml + fleet.yaml on disk, for one checker id."""

    def __init__(self, checks: str, fleet: str, checker_id: str) -> None:
        self.checks, self.fleet, self.checker_id = checks, fleet, checker_id

    def fingerprint(self) -> bytes:
        """Digest of both files' bytes; OSError when one cannot be read."""
        h = hashlib.blake2b(digest_size=16)
        for path in (self.checks, self.fleet):
            with open(path, "rb") as f:
                h.update(hashlib.blake2b(f.read(), digest_size=16).digest())
        return h.digest()

    def load_here(self) -> tuple[Registry, Fleet]:
        """Load in this process (at startup, before anything runs)."""
        from healthplane.proto.config.loader import load_config

        registry, fleet, _ = load_config(self.checks, self.fleet)
        if fleet is None:  # pragma: no cover - a fleet path is always given
            raise ConfigError([f"{self.fleet}: no fleet"])
        return registry, fleet

    def load(self) -> tuple[Registry, Fleet]:
        """Load and taste in a fresh child process (blocking; call from a thread)."""
        ctx = multiprocessing.get_context("spawn")   # never fork a process running gRPC
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            out = pool.submit(_load_and_taste, self.checks, self.fleet, self.checker_id).result()
        if isinstance(out, list):
            raise ConfigError(out)
        return out


class Reloader:
    """Loads with `load` (in a worker thread) and hands good configs to `adopt`.

    `current` returns the running (registry, fleet); `adopt` (a function or
    a coroutine function) may raise to refuse a config (e.g. UnknownChecker
    when this checker is not in the fleet any more).
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
        except Exception as exc:  # UnknownChecker, or a bug: keep the running config
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
