"""The aggregator's status page (``/``) and its data (``/api/v1/checks``).

``/api/v1/checks`` is one JSON document for the latest tick::

    registry_version, sequence, generated_unix_ms
    regions: ["us-east", ...]            the fleet's regions, in fleet.yaml order
    total: int                           checks in the registry
    truncated: bool                      true when only the first MAX_CHECKS are listed
    checks: [{id, status, healthy_votes, reporting_votes, last_change_unix_ms,
              by_region: [[healthy, reporting], ...]}]   aligned with regions

The per-check fields are those of ``healthplane query --json``; ``by_region``
counts the fresh votes of each region's checkers from their latest
snapshots (null right after a registry reload, until the slots follow it).
Before the first tick the answer is 503.

The document is built at most once per tick and once per
``MIN_REBUILD_SECONDS`` whatever the number of viewers, from numpy arrays
on the event loop and turned into JSON in a worker thread, so viewers cost
the tick a bounded, small share of the machine. The page is a static file
(no external assets) that fetches the document every two seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web
from healthplane.proto import codec

if TYPE_CHECKING:
    from healthplane.aggregator.state import AggregatorState
    from healthplane.aggregator.tick_result import TickResult

# Bounds the cost of one document: ~130 bytes a check; 50,000 checks take
# about a second of CPU to build.
MAX_CHECKS = 50_000
# However many ticks and viewers, one document per this many seconds at most,
# so a watched status page costs the aggregator a bounded share of a core.
MIN_REBUILD_SECONDS = 2.0


def region_votes(state: AggregatorState, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(regions, healthy[R, n], reporting[R, n]): fresh votes per region for checks 0..n-1."""
    regions = list(state.fleet.regions)
    where = {r: i for i, r in enumerate(regions)}
    healthy = np.zeros((len(regions), n), dtype=np.int32)
    reporting = np.zeros((len(regions), n), dtype=np.int32)
    fresh = state.fresh_mask(state.clock.now())
    count = state.registry.check_count
    for checker_id, row in state.rows.items():
        if not fresh[row]:
            continue
        states = codec.unpack(bytes(state.slots.row(row)), count)[:n]
        r = where[state.regions[checker_id]]
        healthy[r] += states == codec.HEALTHY
        reporting[r] += (states == codec.HEALTHY) | (states == codec.UNHEALTHY)
    return regions, healthy, reporting


def _document(pub: TickResult, regions: list[str], arrays: dict[str, np.ndarray],
              by_region: tuple[np.ndarray, np.ndarray] | None) -> bytes:
    ids = pub.registry.ids
    status = arrays["status"].tolist()
    healthy, reporting = arrays["healthy"].tolist(), arrays["reporting"].tolist()
    last = arrays["last"].tolist()
    pairs = (np.stack(by_region, axis=-1).transpose(1, 0, 2).tolist()
             if by_region is not None else None)
    checks: list[dict[str, Any]] = [
        {"id": ids[i], "status": codec.state_name(status[i]),
         "healthy_votes": healthy[i], "reporting_votes": reporting[i],
         "last_change_unix_ms": last[i],
         "by_region": pairs[i] if pairs is not None else None}
        for i in range(len(status))]
    doc = {"registry_version": pub.registry.version, "sequence": pub.sequence,
           "generated_unix_ms": pub.generated_unix_ms, "regions": regions,
           "total": pub.registry.check_count,
           "truncated": len(checks) < pub.registry.check_count, "checks": checks}
    return json.dumps(doc, separators=(",", ":")).encode()


class StatusPage:
    """The two routes, with the document cached per tick."""

    def __init__(self, state: AggregatorState) -> None:
        self._state = state
        self._cached: tuple[TickResult, bytes, float] | None = None
        self._building: tuple[TickResult, asyncio.Future[bytes]] | None = None
        self.requests = 0           # /api/v1/checks answers, for tests and curiosity
        self._html = resources.files("healthplane.aggregator").joinpath(
            "status/index.html").read_bytes()

    def routes(self) -> list[tuple[str, Any]]:
        return [("/", self.index), ("/api/v1/checks", self.checks)]

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._html, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def checks(self, request: web.Request) -> web.Response:
        self.requests += 1
        pub = self._state.latest
        if pub is None:
            return web.json_response({"error": "no tick has been computed yet"}, status=503)
        body = await self.document(pub)
        return web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "no-cache"})

    async def document(self, pub: TickResult) -> bytes:
        """The JSON document of pub, built once however many ask at once."""
        now = time.monotonic()
        if self._cached is not None and (self._cached[0] is pub
                                         or now - self._cached[2] < MIN_REBUILD_SECONDS):
            return self._cached[1]
        if self._building is None or self._building[0] is not pub:
            self._building = (pub, asyncio.ensure_future(self._build(pub)))
        body = await asyncio.shield(self._building[1])
        self._cached = (pub, body, now)
        return body

    async def _build(self, pub: TickResult) -> bytes:
        state = self._state
        n = min(pub.registry.check_count, MAX_CHECKS)
        idx = np.arange(n, dtype=np.int64)
        healthy, reporting = pub.votes(idx)
        arrays = {"status": pub.status_of(idx).copy(), "healthy": healthy.copy(),
                  "reporting": reporting.copy(), "last": pub.last_change_of(idx).copy()}
        regions = list(state.fleet.regions)
        by_region = None
        if pub.registry is state.registry:
            regions, h, r = region_votes(state, n)
            by_region = (h, r)
        return await asyncio.to_thread(_document, pub, regions, arrays, by_region)
