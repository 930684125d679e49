"""What every probe kind shares: its result type and its calling convention.

A probe kind is one module (http.py, tcp.py, grpc.py) exposing
``make_prober(check, *, allow_private) -> Prober``. The prober is built once
per check (request bytes, address and options precomputed) and then called
once per scheduled slot. It tries exactly once, never retries, finishes
within ``check.timeout`` and never raises: every failure is a ProbeResult.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's verdict.

    ``reason`` is "ok" or a short, stable phrase that metrics and logs can
    group by: "timeout" (the whole probe overran check.timeout), "refused",
    "reset", "closed" (clean close before a response), "unreachable",
    "resolve failed", "forbidden address (loopback|private|link-local|...)",
    "status N", "search string missing", "bad response" (not HTTP),
    "tls error: DETAIL", "connect error: DETAIL"; grpc adds "not serving",
    "service unknown", "health service missing", "unavailable".
    """

    ok: bool
    latency: float          # seconds from start to verdict
    reason: str


Prober = Callable[[], Awaitable[ProbeResult]]
