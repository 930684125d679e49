"""Probe kinds, one module each, behind one calling convention.

``make_prober(check, allow_private=...)`` builds the prober for a check once
(request bytes, parsed address, TLS context precomputed); the scheduler then
awaits it once per slot. A prober tries exactly once, finishes within
``check.timeout`` and never raises: see :mod:`healthplane.checker.probes.base`.
"""

from __future__ import annotations

from types import ModuleType

from healthplane.proto.config.model import Check

from . import grpc, http, tcp
from .base import Prober, ProbeResult

PROBES: dict[str, ModuleType] = {
    "http": http,
    "https": http,
    "tcp": tcp,
    "grpc": grpc,
}
"""Check type -> the module whose ``make_prober`` builds its prober."""


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """The prober for check; ValueError for a type no probe handles (calculated)."""
    module = PROBES.get(check.type)
    if module is None:
        raise ValueError(f"check {check.id!r}: type {check.type!r} is not probed")
    return module.make_prober(check, allow_private=allow_private)


__all__ = ["PROBES", "ProbeResult", "Prober", "make_prober"]
