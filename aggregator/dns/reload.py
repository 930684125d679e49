"""Zone reload: re-read zone.yaml on SIGHUP and every period, tasted first.

Principle 7 (taste before you serve): a changed zone.yaml is loaded in a
throw-away child process, which also builds every answer of it twice (all
values healthy, all unhealthy) and renders its zone transfer, under a time
limit. Only a zone that passed all of that comes back and is adopted; a bad
file, a crash or a hang in the child keeps the running zone, and is logged
(one line per problem) and counted.

The periodic check first compares a hash of the files' bytes with the last
one seen, so an unchanged file costs a read, not a parse and a process.

:class:`ZoneReloader` knows nothing about files or the DNS front: it calls
``load`` (blocking, from a thread) and hands the result to ``adopt``, so the
same loop can be driven by any source, or replaced by a process-wide
reloader without touching the front.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection

from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import Zone

log = logging.getLogger("healthplane.dns.reload")

DEFAULT_TASTE_TIMEOUT = 30.0


def _taste(zone_path: str, checks_path: str | None) -> Zone | list[str]:
    """In the child: load the zone, build its answers and transfer; the zone or errors."""
    from healthplane.proto import codec
    from healthplane.proto.config.loader import load_checks, load_zone

    from .build import build_answers
    from .transfer import zone_rrsets

    try:
        registry = load_checks(checks_path, allow_private_targets=True) if checks_path else None
        zone = load_zone(zone_path, registry)
    except ConfigError as exc:
        return list(exc.errors)
    try:
        for state in (codec.HEALTHY, codec.UNHEALTHY):
            table = build_answers(zone, lambda _c, s=state: s, serial=1)
            zone_rrsets(table)
    except Exception as exc:  # noqa: BLE001 - any failure means "do not adopt"
        return [f"{zone_path}: trial build failed: {type(exc).__name__}: {exc}"]
    return zone


def _child(conn: Connection, zone_path: str, checks_path: str | None) -> None:
    try:
        conn.send(_taste(zone_path, checks_path))
    finally:
        conn.close()


class ZoneFiles:
    """zone.yaml (and the checks.yaml its check ids are verified against) on disk."""

    def __init__(self, zone: str, checks: str | None = None,
                 timeout: float = DEFAULT_TASTE_TIMEOUT) -> None:
        self.zone, self.checks, self.timeout = zone, checks, timeout

    def fingerprint(self) -> bytes | None:
        """Hash of the files' bytes; None when one cannot be read (load says why)."""
        h = hashlib.sha256()
        try:
            for path in (self.zone, self.checks):
                if path is not None:
                    with open(path, "rb") as f:
                        h.update(f.read())
                h.update(b"\0")
        except OSError:
            return None
        return h.digest()

    def load(self) -> Zone:
        """Load and taste in a fresh process (blocking; call from a thread)."""
        ctx = multiprocessing.get_context("spawn")   # never fork a process running gRPC
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, self.zone, self.checks), daemon=True)
        proc.start()
        child.close()
        try:
            if not parent.poll(self.timeout):
                raise ConfigError([f"{self.zone}: tasting took longer than {self.timeout:g}s"])
            try:
                out = parent.recv()
            except EOFError:
                raise ConfigError([f"{self.zone}: the tasting process died "
                                   f"(exit {proc.exitcode})"]) from None
        finally:
            parent.close()
            proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        if isinstance(out, list):
            raise ConfigError(out)
        return out


class ZoneReloader:
    """Calls ``load`` on trigger and every ``period`` s; hands a new zone to ``adopt``.

    ``current`` returns the zone being served, so an unchanged one is not
    adopted again. Results are counted in :attr:`results` ("adopted",
    "unchanged", "failed").
    """

    def __init__(self, load: Callable[[], Zone], adopt: Callable[[Zone], None],
                 current: Callable[[], Zone], period: float, *,
                 fingerprint: Callable[[], bytes | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.load, self.adopt, self.current = load, adopt, current
        self.period = period
        self.fingerprint = fingerprint
        self.clock = clock
        self.results: Counter[str] = Counter()
        self._seen = fingerprint() if fingerprint else None
        self._trigger = asyncio.Event()
        self._lock = asyncio.Lock()

    def trigger(self) -> None:
        """Reload soon (the SIGHUP handler)."""
        self._trigger.set()

    async def reload_once(self, why: str = "manual") -> str:
        async with self._lock:
            result = await self._reload(why)
        self.results[result] += 1
        return result

    async def _reload(self, why: str) -> str:
        if self.fingerprint is not None:
            seen = await asyncio.to_thread(self.fingerprint)
            if why == "periodic" and seen is not None and seen == self._seen:
                return "unchanged"
            self._seen = seen
        try:
            zone = await asyncio.to_thread(self.load)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("zone reload (%s) rejected, keeping the running zone: %s", why, line,
                          extra={"trigger": why, "error": line})
            return "failed"
        except Exception as exc:  # noqa: BLE001 - e.g. the child could not start
            log.error("zone reload (%s) failed, keeping the running zone: %s", why, exc,
                      extra={"trigger": why, "error": str(exc)})
            return "failed"
        if zone == self.current():
            log.info("zone reload (%s): unchanged", why, extra={"trigger": why})
            return "unchanged"
        try:
            self.adopt(zone)
        except Exception:  # adopting must never take the front down
            log.exception("zone reload (%s): adopting failed, keeping the running zone", why,
                          extra={"trigger": why})
            return "failed"
        log.info("zone reload (%s): adopted zone %s (%d records)", why, zone.zone,
                 len(zone.records), extra={"trigger": why, "zone": zone.zone,
                                           "records": len(zone.records)})
        return "adopted"

    async def run(self) -> None:
        """Reload on trigger() and every period seconds (period <= 0: on trigger only)."""
        next_due = self.clock() + self.period
        while True:
            timeout = max(0.0, next_due - self.clock()) if self.period > 0 else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._trigger.wait()
            why = "signal" if self._trigger.is_set() else "periodic"
            self._trigger.clear()
            await self.reload_once(why)
            if self.period > 0:
                # A fixed schedule; a slow reload skips slots rather than bunching them.
                while next_due <= self.clock():
                    next_due += self.period
