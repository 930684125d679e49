"""The zone apex: SOA, NS and glue, and the SOA serial.

The SOA's fixed fields come from zone.yaml's ``soa`` (defaults: the first
name server as ``mname``, ``hostmaster.<zone>``, refresh 3600, retry 600,
expire 604800, minimum the zone ttl). The name servers are zone.yaml's
``nameservers`` (else the command line's, else ``ns1.<zone>``); one with an
address inside the zone gets that address served as its A or AAAA (glue).

The serial starts at the Unix time of the start and grows by one for each
build that changed an answer, never more often, so secondaries see every
change and nothing else. A restart starts again from the clock, which keeps
it growing unless changes ran ahead of the clock (more than one a second
for a long time); a serial file (``--serial-file``) covers that case too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from healthplane.proto.config.model import Zone

log = logging.getLogger(__name__)


class Apex(NamedTuple):
    soa: dns.rrset.RRset
    ns: dns.rrset.RRset
    negative_soa: dns.rrset.RRset                 # TTL min(ttl, minimum), RFC 2308
    glue: tuple[dns.rrset.RRset, ...]


def ns_names(zone: Zone, fallback: Sequence[str] = ()) -> list[str]:
    """The apex NS names, absolute."""
    origin = dns.name.from_text(zone.zone)
    names = [ns.name for ns in zone.nameservers] or list(fallback)
    return [dns.name.from_text(n, origin).to_text() for n in names] or \
        [dns.name.from_text("ns1", origin).to_text()]


def apex_sets(zone: Zone, serial: int, nameservers: Sequence[str] = ()) -> Apex:
    """The synthesised SOA, NS, negative-answer SOA and glue of the apex."""
    origin = dns.name.from_text(zone.zone)
    names = ns_names(zone, nameservers)
    soa_cfg = zone.soa
    mname = soa_cfg.mname or names[0]
    rname = soa_cfg.rname or dns.name.from_text("hostmaster", origin).to_text()
    minimum = zone.ttl if soa_cfg.minimum is None else soa_cfg.minimum
    text = (f"{mname} {rname} {serial & 0xFFFFFFFF} {soa_cfg.refresh} {soa_cfg.retry} "
            f"{soa_cfg.expire} {minimum}")
    soa = dns.rrset.from_text_list(origin, zone.ttl, dns.rdataclass.IN, dns.rdatatype.SOA,
                                   [text])
    negative = soa
    if minimum < zone.ttl:
        negative = dns.rrset.from_text_list(origin, minimum, dns.rdataclass.IN,
                                            dns.rdatatype.SOA, [text])
    ns = dns.rrset.from_text_list(origin, zone.ttl, dns.rdataclass.IN, dns.rdatatype.NS, names)
    glue = []
    for server in zone.nameservers:
        if server.address is not None:
            rdtype = dns.rdatatype.A if ipaddress.ip_address(server.address).version == 4 \
                else dns.rdatatype.AAAA
            glue.append(dns.rrset.from_text_list(server.name, zone.ttl, dns.rdataclass.IN,
                                                 rdtype, [server.address]))
    return Apex(soa, ns, negative, tuple(glue))


def read_serial(path: str) -> int:
    """The serial saved in ``path``; 0 when there is none (first start)."""
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip() or 0) & 0xFFFFFFFF
    except (OSError, ValueError):
        return 0


def write_serial(path: str, serial: int) -> None:
    """Replace ``path`` atomically with ``serial``; a failure is logged, never raised."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{serial}\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot save SOA serial to %s: %s", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


class SerialClock:
    """SOA serials: the start time, then one more per answer change.

    ``floor`` is a serial the first one must exceed (the last one served
    before a restart); ``on_change`` is called with each new serial.
    """

    def __init__(self, wall: Callable[[], float] = time.time, *, floor: int = 0,
                 on_change: Callable[[int], None] | None = None) -> None:
        self._wall = wall
        self.serial = max(int(wall()), floor + 1 if floor else 0) & 0xFFFFFFFF
        self._on_change = on_change
        self._signature: tuple[object, ...] | None = None
        if on_change is not None:
            on_change(self.serial)

    def advance(self, signature: tuple[object, ...]) -> bool:
        """Move the serial if ``signature`` differs from the last one; True when it moved."""
        if signature == self._signature:
            return False
        first = self._signature is None
        self._signature = signature
        if not first:
            self.serial = (self.serial + 1) & 0xFFFFFFFF
            if self._on_change is not None:
                self._on_change(self.serial)
        return True
