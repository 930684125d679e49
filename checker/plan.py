"""What a checker runs for one configuration: its checks, probers and dispatchers.

:class:`Planner` turns a (registry, fleet) into a :class:`Plan`: the checks
this checker owns (:mod:`healthplane.checker.ownership`) in a
:class:`~healthplane.checker.dispatch.Dispatcher`, the fleet's canaries in a
second, small one, and, per dispatcher row, the registry index of its check.
Building a plan is pure CPU work (hashing, prober construction) that touches
nothing running, so a reload builds it in a worker thread and the checker
switches to it in one step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
from healthplane.checker.dispatch import Dispatcher
from healthplane.checker.metrics import CheckerMetrics
from healthplane.checker.ownership import owned_mask
from healthplane.checker.probes import KIND_CODE
from healthplane.checker.probes.base import Outcome, Prober, ProbeResult
from healthplane.proto.config.model import Check, Fleet, Registry

from healthplane.runtime.clock import Clock
from healthplane.runtime.listen import parse_hostport

log = logging.getLogger("healthplane.checker")

_CHUNK = 4096     # checks made at a time while planning
_COLUMNS = ("interval", "timeout", "failure_threshold", "success_threshold", "type")

MakeProber = Callable[..., Prober]   # make_prober(check, *, allow_private) -> Prober


def default_make_prober(check: Check, *, allow_private: bool) -> Prober:
    """The prober of check's type (see healthplane.checker.probes)."""
    from healthplane.checker.probes import make_prober

    return make_prober(check, allow_private=allow_private)


class UnknownChecker(ValueError):
    """The checker id is not in the fleet."""


@dataclass(slots=True)
class Plan:
    """One configuration, ready to run.

    indices[row] is the registry index of the check in dispatcher row ``row``.
    """

    registry: Registry
    fleet: Fleet
    region: str
    indices: np.ndarray
    dispatcher: Dispatcher
    canaries: Dispatcher


class RegistryIds(Sequence[str]):
    """The check ids of a dispatcher's rows, read from the registry when
    asked: the registry already holds them, packed, and a second copy as
    strings would cost more than everything else a row keeps."""

    __slots__ = ("_registry", "_indices")

    def __init__(self, registry: Registry, indices: np.ndarray) -> None:
        self._registry = registry
        self._indices = indices

    def __len__(self) -> int:
        return int(self._indices.size)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return self._registry.column("id", self._indices[i])
        return str(self._registry.column("id", [int(self._indices[i])])[0])

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.column("id", self._indices))


def _broken_prober(reason: str) -> Prober:
    result = ProbeResult(Outcome.ERROR, 0.0, reason)

    async def probe() -> ProbeResult:
        return result
    return probe


@dataclass(frozen=True)
class Planner:
    """Builds the plans of one checker (see Checker for the settings)."""

    checker_id: str
    clock: Clock
    make_prober: MakeProber
    metrics: CheckerMetrics
    late_cap: float
    canary_interval: float
    canary_threshold: int

    def plan(self, registry: Registry, fleet: Fleet) -> Plan:
        """Everything a config needs, built without touching the running one.

        Raises UnknownChecker if this checker is not in the fleet.
        """
        region = fleet.region_of(self.checker_id)
        if region is None:
            known = ", ".join(fleet.checker_ids) or "none"
            raise UnknownChecker(f"checker id {self.checker_id!r} is not in the fleet "
                                 f"(known: {known})")
        indices = np.flatnonzero(owned_mask(registry, fleet, self.checker_id))
        if registry.check_count < 1 << 31:
            indices = indices.astype(np.int32)   # kept per owned check for as long as it runs
        allow = fleet.allow_private_targets
        # Checks are made and probers built a chunk at a time: what the
        # engine runs keeps no object, so the whole set never exists at once.
        probers = (self._prober(c, allow)
                   for at in range(0, indices.size, _CHUNK)
                   for c in registry.take(indices[at:at + _CHUNK]))
        dispatcher = self._dispatcher(
            RegistryIds(registry, indices), probers,
            {name: registry.column(name, indices) for name in _COLUMNS}, count=True)
        canaries = self._dispatcher_for(*self._canary_checks(fleet), count=False)
        return Plan(registry, fleet, region, indices, dispatcher, canaries)

    def _prober(self, check: Check, allow_private: bool) -> Prober:
        try:
            return self.make_prober(check, allow_private=allow_private)
        except Exception as exc:  # one bad check must not stop the others
            log.warning("check cannot be probed", extra={"check": check.id, "error": str(exc)})
            return _broken_prober("config error")

    def _canary_checks(self, fleet: Fleet) -> tuple[list[Check], list[Prober]]:
        checks, probers = [], []
        for address in fleet.canaries:
            try:
                host, port = parse_hostport(address)
            except ValueError as exc:
                log.warning("canary %s ignored: %s", address, exc)
                continue
            check = Check(id=f"canary:{address}", type="tcp", host=host, port=port,
                          interval=self.canary_interval,
                          timeout=min(1.0, self.canary_interval),
                          failure_threshold=self.canary_threshold)
            checks.append(check)
            # Canaries are the operator's own infrastructure (by default the
            # aggregators), named in fleet.yaml, so private addresses are fine.
            probers.append(self._prober(check, True))
        return checks, probers

    def _dispatcher_for(self, checks: list[Check], probers: list[Prober], *,
                        count: bool) -> Dispatcher:
        columns = {name: [getattr(c, name) for c in checks] for name in _COLUMNS}
        return self._dispatcher(tuple(c.id for c in checks), probers, columns, count=count)

    def _dispatcher(self, ids: Sequence[str], probers: Iterable[Prober],
                    columns: dict[str, list], *, count: bool) -> Dispatcher:
        m = self.metrics
        fail = columns["failure_threshold"]
        return Dispatcher(
            ids=ids, probers=probers,
            intervals=np.asarray(columns["interval"], dtype=np.float64),
            timeouts=np.asarray(columns["timeout"], dtype=np.float64),
            thresholds=np.asarray(fail, dtype=np.uint8),
            successes=np.asarray([s or f for s, f in zip(columns["success_threshold"], fail,
                                                         strict=True)], dtype=np.uint8),
            kinds=np.asarray([KIND_CODE.get(t, 0) for t in columns["type"]], dtype=np.int8),
            checker_id=self.checker_id, clock=self.clock, late_cap=self.late_cap,
            count_probes=m.count_probes if count else self._count_canaries,
            observe_lateness=m.observe_lateness if count else None)

    def _count_canaries(self, _kinds: np.ndarray, codes: np.ndarray) -> None:
        ok = int(np.count_nonzero(codes == 0))
        if ok:
            self.metrics.canary_probes.labels("ok").inc(ok)
        if codes.size - ok:
            self.metrics.canary_probes.labels("failed").inc(codes.size - ok)
