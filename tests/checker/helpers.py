"""Helpers shared by the checker tests: registries, fleets and fake probers."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Callable

from healthplane.checker.probes.base import Outcome, ProbeResult
from healthplane.proto.config.model import Check, Fleet, Registry


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll cond in real time; the deadline only bounds a test that is broken.

    For what runs in real time (sockets, threads): a loaded machine may take
    longer to get there, never somewhere else.
    """
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def make_registry(checks: list[Check]) -> Registry:
    digest = hashlib.blake2b("|".join(repr(c) for c in checks).encode(), digest_size=8)
    return Registry(checks=tuple(checks), version=digest.hexdigest())


def tcp_checks(n: int, *, interval: float = 10.0, timeout: float = 1.0, port: int = 9,
               threshold: int = 3, prefix: str = "c", regions: tuple[str, ...] = ()) -> list[Check]:
    return [Check(id=f"{prefix}{i}", type="tcp", host="127.0.0.1", port=port, interval=interval,
                  timeout=timeout, failure_threshold=threshold, regions=regions)
            for i in range(n)]


def make_fleet(regions: dict[str, tuple[str, ...]], *, per_region: int = 1,
               aggregators: tuple[str, ...] = (), canaries: tuple[str, ...] = (),
               report_interval: float = 1.0) -> Fleet:
    return Fleet(regions=regions, aggregators=aggregators, checkers_per_region=per_region,
                 report_interval=report_interval, canaries=canaries, allow_private_targets=True)


class Recorder:
    """A make_prober whose probers succeed (or not) at once and log start times."""

    def __init__(self, clock, ok: bool | dict[str, bool] = True, latency: float = 0.0) -> None:
        self.clock = clock
        self.ok = ok
        self.latency = latency
        self.starts: dict[str, list[float]] = {}

    def __call__(self, check: Check, *, allow_private: bool):
        starts = self.starts.setdefault(check.id, [])
        clock = self.clock

        async def probe() -> ProbeResult:
            starts.append(clock.now())
            if self.latency:
                await clock.sleep_until(clock.now() + self.latency)
            ok = self.ok if isinstance(self.ok, bool) else self.ok.get(check.id, True)
            return ProbeResult(Outcome.OK if ok else Outcome.REFUSED, self.latency,
                               "ok" if ok else "refused")
        return probe


def closed_port() -> int:
    """A loopback port with nothing listening (connects are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
