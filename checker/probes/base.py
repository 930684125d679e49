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
    ok: bool
    latency: float          # seconds from start to verdict
    reason: str             # "ok", "refused", "timeout", "status 503", "tls error", ...


Prober = Callable[[], Awaitable[ProbeResult]]
