"""What every probe kind shares: its result type and its calling convention.

A probe kind is one module (http.py, tcp.py, grpc.py, dns.py) exposing
``make_prober(check, *, allow_private) -> Prober``. The prober is built once
per check (request bytes, address and options precomputed) and then called
once per scheduled slot. It tries exactly once, never retries, finishes
within ``check.timeout`` and never raises: every failure is a ProbeResult.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum


class Outcome(IntEnum):
    """What kind of verdict a probe reached; the reason text says the detail.

    Values are small and dense: the checker counts probes in arrays indexed
    by them, and metrics label them by ``label``.
    """

    OK = 0
    FAILED = 1        # the target answered, and the answer is not healthy
    TIMEOUT = 2       # the whole probe overran check.timeout
    REFUSED = 3       # the connection was refused
    RESET = 4         # reset or closed before an answer
    UNREACHABLE = 5   # no route to the target
    TLS_ERROR = 6     # handshake or certificate verification failed
    RESOLVE_FAILED = 7  # the name did not resolve (to an address of the family asked)
    FORBIDDEN = 8     # the target policy refuses the address
    ERROR = 9         # anything else: a local error, a config error, a cancelled probe

    @property
    def label(self) -> str:
        return self.name.lower()


OUTCOME_LABELS: tuple[str, ...] = tuple(o.label for o in Outcome)
"""Outcome value -> its metric label, by index."""

NO_CERT = math.nan
"""``cert_not_after`` of a probe that saw no certificate."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's verdict.

    ``reason`` is "ok" or a short, stable phrase that logs and detail
    reports show: "timeout", "refused", "reset", "closed" (clean close
    before a response), "unreachable", "resolve failed", "no ipv6 address",
    "forbidden address (loopback|private|link-local|...)", "status N",
    "search string missing", "headers over N bytes", "bad response",
    "expect string missing", "tls error: DETAIL", "connect error: DETAIL";
    grpc adds "not serving", "service unknown", "health service missing",
    "unavailable"; dns adds "rcode NXDOMAIN" and the like. Callers branch
    on ``outcome``, never on the text.

    ``cert_not_after``: for a TLS probe that completed a handshake, the
    leaf certificate's notAfter as Unix seconds; NaN otherwise.
    """

    outcome: Outcome
    latency: float          # seconds from start to verdict
    reason: str
    cert_not_after: float = NO_CERT

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


Prober = Callable[[], Awaitable[ProbeResult]]
