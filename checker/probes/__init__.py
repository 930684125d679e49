"""Probe kinds, one module each, behind one calling convention.

``make_prober(check, allow_private=...)`` builds the prober for a check once
(request bytes, parsed address, TLS context precomputed); the scheduler then
awaits it once per slot. A prober tries exactly once, finishes within
``check.timeout`` and never raises: see :mod:`healthplane.checker.probes.base`.
Plain tcp and http probes of IP literals run on the compiled engine when it
is built (:mod:`healthplane.checker.probes.engine`).
"""

from __future__ import annotations

from types import ModuleType

from healthplane.proto.config.model import Check

from . import dns, engine, grpc, http, tcp
from .base import Outcome, Prober, ProbeResult

PROBES: dict[str, ModuleType] = {
    "http": http,
    "https": http,
    "tcp": tcp,
    "grpc": grpc,
    "dns": dns,
}
"""Check type -> the module whose ``make_prober`` builds its prober."""

KINDS: tuple[str, ...] = tuple(PROBES)
"""Every probed check type, in the order of its kind code."""
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
"""Check type -> a small int, so per-probe counters are arrays indexed by kind."""


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """The prober for check; ValueError for a type no probe handles (calculated)."""
    module = PROBES.get(check.type)
    if module is None:
        raise ValueError(f"check {check.id!r}: type {check.type!r} is not probed")
    return engine.wrap(module.make_prober(check, allow_private=allow_private))


__all__ = ["KINDS", "KIND_CODE", "Outcome", "PROBES", "ProbeResult", "Prober", "make_prober"]
