"""Where a probe connects: IP literals parsed once, host names resolved and cached.

A check's ``host`` is either an IP address or a name. Literals are checked
against the target policy once, when the prober is built, and cost nothing
per probe. Names are resolved with ``loop.getaddrinfo`` (a worker thread on
asyncio, libuv's thread pool on uvloop), so a slow resolver never blocks the
event loop that runs every other probe.

Resolutions are cached per name for ``POSITIVE_TTL`` seconds (failures for
``NEGATIVE_TTL``), shared by every prober in the process. getaddrinfo does
not tell us the record's DNS TTL, so the cache uses a short fixed lifetime:
at 5,000 probes per second against a few hundred names the resolver sees a
few lookups per second instead of thousands, and a changed record is picked
up within half a minute. Lookups for the same name that overlap share one
getaddrinfo call.

The target policy (``proto.config.addresses.forbidden_reason``) is applied to
every address a name resolves to: a name with *any* loopback, private or
link-local address is refused unless the fleet allows private targets, so a
name cannot be used to reach inside the checker's network, and the address
we connect to is always one we checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from healthplane.proto.config.addresses import forbidden_reason

from .base import Outcome

Family = Literal["any", "ipv4", "ipv6"]

POSITIVE_TTL = 30.0   # seconds a successful resolution is reused
NEGATIVE_TTL = 5.0    # seconds a failed resolution is reused


@dataclass(frozen=True, slots=True)
class Resolved:
    """The outcome of resolving a target: an address to dial, or why not."""

    ip: str | None          # the address to connect to; None when refused
    reason: str             # "" when ip is set, else e.g. "resolve failed"
    outcome: Outcome = Outcome.OK   # RESOLVE_FAILED or FORBIDDEN when ip is None
    ips: tuple[str, ...] = ()       # every address the name has, resolver order

    def only(self, family: Family) -> Resolved:
        """This verdict narrowed to one address family (``ip_family``)."""
        if self.ip is None or family == "any":
            return self
        v6 = family == "ipv6"
        for ip in self.ips:
            if (":" in ip) == v6:
                return Resolved(ip, "", Outcome.OK, self.ips)
        return Resolved(None, f"no {family} address", Outcome.RESOLVE_FAILED, self.ips)


def literal(host: str, *, allow_private: bool) -> Resolved | None:
    """The verdict for an IP literal (checked once), or None when host is a name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _verdict([str(ip)], allow_private)


def _verdict(ips: list[str], allow_private: bool) -> Resolved:
    if not ips:
        return Resolved(None, "resolve failed", Outcome.RESOLVE_FAILED)
    if not allow_private:
        for ip in ips:
            why = forbidden_reason(ip)
            if why is not None:
                return Resolved(None, f"forbidden address ({why})", Outcome.FORBIDDEN)
    return Resolved(ips[0], "", Outcome.OK, tuple(ips))


class Resolver:
    """A small shared cache of name -> Resolved, with overlapping lookups merged.

    The clock is injectable for tests; entries expire by monotonic time.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cache: dict[tuple[str, bool], tuple[float, Resolved]] = {}
        self._pending: dict[tuple[str, bool], asyncio.Task[Resolved]] = {}

    def cached(self, host: str, allow_private: bool) -> Resolved | None:
        """The cached verdict for host, or None when absent or expired."""
        entry = self._cache.get((host, allow_private))
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    async def resolve(self, host: str, *, allow_private: bool) -> Resolved:
        """Resolve host (cached); never raises except on cancellation."""
        key = (host, allow_private)
        hit = self.cached(host, allow_private)
        if hit is not None:
            return hit
        loop = asyncio.get_running_loop()
        task = self._pending.get(key)
        if task is None or task.get_loop() is not loop or task.done():
            task = loop.create_task(self._fill(loop, key))
            self._pending[key] = task
        # The lookup runs in its own task and waiters shield it: one probe's
        # timeout must not cancel the lookup the others are waiting for.
        return await asyncio.shield(task)

    async def _fill(self, loop: asyncio.AbstractEventLoop, key: tuple[str, bool]) -> Resolved:
        try:
            verdict = await self._lookup(loop, *key)
            ttl = POSITIVE_TTL if verdict.ip is not None else NEGATIVE_TTL
            if len(self._cache) >= 100_000:
                # Names come from the registry, but never let the cache grow unchecked.
                self._cache.clear()
            self._cache[key] = (self._clock() + ttl, verdict)
            return verdict
        finally:
            if self._pending.get(key) is asyncio.current_task():
                del self._pending[key]

    @staticmethod
    async def _lookup(loop: asyncio.AbstractEventLoop, host: str,
                      allow_private: bool) -> Resolved:
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return Resolved(None, "resolve failed", Outcome.RESOLVE_FAILED)
        ips: list[str] = []
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                ip = str(sockaddr[0]).split("%", 1)[0]   # drop an IPv6 zone id
                if ip not in ips:
                    ips.append(ip)
        return _verdict(ips, allow_private)


RESOLVER = Resolver()
"""The process-wide resolver every prober uses."""
