"""Config reload: re-read checks.yaml and fleet.yaml on SIGHUP and every period.

A new configuration is adopted only when it loads cleanly *and* survives a
trial tick (principle 7: taste before you serve); otherwise the running one
stays, the failure is logged one line per problem and counted. The registry
being replaced stays accepted as the "previous" version, so checkers that
have not reloaded yet are remapped by check id instead of being dropped, and
every check in both registries keeps, by id, its last known status and last
change time (see :meth:`aggregator.tick.TickEngine.inherit`); the tick
sequence goes on growing.

For files (:class:`FileSource`) the periodic check first compares a hash of
the two files' bytes with the last one seen and parses nothing when they are
unchanged: parsing a 100,000-check registry takes seconds. When they did
change, loading and the trial tick run in a throw-away child process, so
neither the parse nor a crash in it touches the serving process; only the
validated result comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from healthplane.aggregator.server import Aggregator, ReloadRefused
from healthplane.aggregator.state import AggregatorState
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Fleet, Registry

from healthplane.runtime.clock import Clock, FakeClock

log = logging.getLogger("healthplane.aggregator.reload")

Loader = Callable[[], tuple[Registry, Fleet]]


def _taste(agg: Aggregator, registry: Registry, fleet: Fleet) -> None:
    """One tick of the new configuration on empty slots; raises if the engine cannot."""
    trial = AggregatorState(registry, fleet, agg.state.kit, FakeClock())
    trial.tick(1)


def _load_and_taste(checks: str, fleet_path: str) -> tuple[Registry, Fleet] | list[str]:
    """In the child process: load both files and run one trial tick.

    Returns the configuration, or the error lines (a ConfigError itself does
    not survive pickling intact).
    """
    from healthplane.aggregator.kit import default_kit
    from healthplane.proto.config.loader import load_config

    try:
        registry, fleet, _ = load_config(checks, fleet_path)
    except ConfigError as exc:
        return list(exc.errors)
    if fleet is None:
        return [f"{fleet_path}: no fleet"]
    try:
        AggregatorState(registry, fleet, default_kit(), FakeClock()).tick(1)
    except Exception as exc:  # noqa: BLE001 - any failure means "do not adopt"
        return [f"trial tick failed: {exc}"]
    return registry, fleet


class FileSource:
    """checks.yaml + fleet.yaml on disk, loaded in a child process."""

    def __init__(self, checks: str, fleet: str) -> None:
        self.checks, self.fleet = checks, fleet

    def fingerprint(self) -> bytes | None:
        """Hash of both files' bytes; None when one cannot be read (load reports why)."""
        h = hashlib.sha256()
        try:
            for path in (self.checks, self.fleet):
                with open(path, "rb") as f:
                    h.update(f.read())
                h.update(b"\0")
        except OSError:
            return None
        return h.digest()

    def load(self) -> tuple[Registry, Fleet]:
        """Load and taste in a fresh process (blocking; call from a thread)."""
        ctx = multiprocessing.get_context("spawn")  # never fork a process running gRPC
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            out = pool.submit(_load_and_taste, self.checks, self.fleet).result()
        if isinstance(out, list):
            raise ConfigError(out)
        return out


class ConfigReloader:
    """Calls ``load`` and hands a new, valid configuration to the aggregator.

    ``fingerprint``, when given, is called first on periodic reloads: the
    same value as last time means nothing changed and nothing is parsed.
    ``taste`` runs the trial tick in this process; a source that already
    tasted the configuration elsewhere (FileSource) turns it off.
    """

    def __init__(self, agg: Aggregator, load: Loader, period: float, clock: Clock, *,
                 fingerprint: Callable[[], bytes | None] | None = None,
                 taste: bool = True) -> None:
        self.agg = agg
        self.load = load
        self.period = period
        self.clock = clock
        self.fingerprint = fingerprint
        self.taste = taste
        self._seen: bytes | None = fingerprint() if fingerprint else None
        self._trigger = asyncio.Event()
        self._lock = asyncio.Lock()

    @classmethod
    def for_files(cls, agg: Aggregator, checks: str, fleet: str, period: float,
                  clock: Clock) -> ConfigReloader:
        src = FileSource(checks, fleet)
        return cls(agg, src.load, period, clock, fingerprint=src.fingerprint, taste=False)

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
        if self.fingerprint is not None:
            seen = await asyncio.to_thread(self.fingerprint)
            if why == "periodic" and seen is not None and seen == self._seen:
                return "unchanged"
            self._seen = seen
        try:
            registry, fleet = await asyncio.to_thread(self.load)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload (%s) rejected: %s", why, line)
            return "failed"
        except Exception as exc:  # noqa: BLE001 - e.g. the child process died
            log.error("reload (%s) failed: %s", why, exc)
            return "failed"
        st = self.agg.state
        if registry.version == st.registry.version and fleet == st.fleet:
            return "unchanged"
        if self.taste:
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
