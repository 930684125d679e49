"""NOTIFY (RFC 1996): tell each secondary that the zone's serial moved.

:meth:`Notifier.changed` only records that a NOTIFY is due; one task per
secondary sends it, at most once per ``min_interval`` (the aggregator's
tick), so a burst of changes costs one NOTIFY, not a queue. A secondary that
does not answer is retried a bounded number of times and then left to its
own SOA refresh timer; a newer change cuts the retries short, and a slow or
absent secondary never delays another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
from healthplane.proto.config.addresses import parse_hostport

log = logging.getLogger("healthplane.dns.notify")


def notify_message(zone: str, soa: dns.rrset.RRset | None = None,
                   key: dns.tsig.Key | None = None) -> dns.message.Message:
    """A NOTIFY for ``zone``: opcode NOTIFY, AA, the zone's SOA as its question."""
    msg = dns.message.make_query(zone, dns.rdatatype.SOA)
    # Flags first: assigning flags after set_opcode() would reset the opcode to QUERY.
    msg.flags = dns.flags.AA
    msg.set_opcode(dns.opcode.NOTIFY)
    if soa is not None:
        msg.answer.append(soa)       # a hint of the new serial (RFC 1996 3.7)
    if key is not None:
        msg.use_tsig(key)
    return msg


class Notifier:
    """Sends NOTIFY to ``targets`` (HOST:PORT) when :meth:`changed` was called."""

    def __init__(self, zone: str, targets: Sequence[str], *, key: dns.tsig.Key | None = None,
                 soa: Callable[[], dns.rrset.RRset | None] = lambda: None,
                 min_interval: Callable[[], float] = lambda: 1.0,
                 timeout: float = 1.0, attempts: int = 3) -> None:
        self.zone = zone
        self.targets = tuple(targets)
        self.key = key
        self.soa = soa
        self.min_interval = min_interval
        self.timeout = timeout
        self.attempts = attempts
        self.stats: Counter[str] = Counter()   # "sent", "acked", "failed"
        self._due = asyncio.Event()
        self._late: set[asyncio.Future[Any]] = set()

    def _settle(self, query: asyncio.Future[Any]) -> None:
        self._late.discard(query)
        if not query.cancelled() and query.exception() is None:
            self.stats["acked"] += 1

    def retarget(self, zone: str, targets: Sequence[str], key: dns.tsig.Key | None) -> None:
        self.zone, self.targets, self.key = zone, tuple(targets), key
        self._due.set()

    def changed(self, _serial: int = 0) -> None:
        """The serial moved: a NOTIFY is due at every secondary."""
        self._due.set()

    async def run(self) -> None:
        """Follow changes and targets until cancelled."""
        followers: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        try:
            while True:
                for target in self.targets:
                    if target not in followers:
                        event = asyncio.Event()
                        followers[target] = (event, asyncio.create_task(
                            self._follow(target, event), name=f"notify {target}"))
                for target in [t for t in followers if t not in self.targets]:
                    followers.pop(target)[1].cancel()
                for event, _ in followers.values():
                    event.set()
                await self._due.wait()
                self._due.clear()
        finally:
            for _, task in followers.values():
                task.cancel()
            for query in list(self._late):
                query.cancel()

    async def _follow(self, target: str, due: asyncio.Event) -> None:
        while True:
            await due.wait()
            due.clear()
            started = time.monotonic()
            await self._notify(target, due)
            rest = self.min_interval() - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    async def _notify(self, target: str, newer: asyncio.Event) -> None:
        host, port = parse_hostport(target)
        for attempt in range(self.attempts):
            msg = notify_message(self.zone, self.soa(), self.key)
            self.stats["sent"] += 1
            query = asyncio.ensure_future(
                dns.asyncquery.udp(msg, host, port=port, timeout=self.timeout))
            waiter = asyncio.ensure_future(newer.wait())
            try:
                await asyncio.wait({query, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if not query.done():
                # A newer serial is due: stop waiting for this answer (the NOTIFY is
                # out and may still be answered) and send the newer one.
                self._late.add(query)
                query.add_done_callback(self._settle)
                return
            try:
                query.result()
            except (dns.exception.DNSException, OSError) as exc:
                if attempt + 1 == self.attempts:
                    self.stats["failed"] += 1
                    log.warning("NOTIFY %s to %s: no answer after %d tries (%s)",
                                self.zone, target, self.attempts, exc or type(exc).__name__,
                                extra={"zone": self.zone, "secondary": target})
                continue
            self.stats["acked"] += 1
            log.debug("NOTIFY %s to %s acknowledged", self.zone, target)
            return
