"""The ``Health`` service: Get the latest tick, Watch every tick, Query checks by id.

Query answers per check from the latest tick (status, healthy and reporting
votes, last change) and, when it names at most ``DETAIL_LIMIT`` checks, per
checker from the live slots (region, the vote in its latest snapshot, and
that snapshot's age in ms; -1 when the checker never reported). An unknown
id fails with NOT_FOUND naming it.

Each tick is turned into protobuf at most once per shape (with or without
check ids), however many callers ask, and Watch hands each watcher only the
newest tick (see :mod:`healthplane.aggregator.watchers`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import NoReturn

import grpc
import numpy as np
from healthplane.aggregator.state import AggregatorState, CheckerDetail
from healthplane.aggregator.tick_result import TickResult
from healthplane.aggregator.watchers import LatestHub
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

NO_TICK_YET = "no tick has been computed yet"

# Queries for at most this many checks carry per-checker detail (every
# checker's vote and snapshot age); larger ones carry the per-check figures
# only. Detail for a million checks would be a hundred million messages.
DETAIL_LIMIT = 1000


class SnapshotCache:
    """The HealthSnapshot messages of the latest tick, built on first use."""

    def __init__(self) -> None:
        self._pub: TickResult | None = None
        self._plain: pb.HealthSnapshot | None = None
        self._with_ids: pb.HealthSnapshot | None = None

    def get(self, pub: TickResult, include_check_ids: bool) -> pb.HealthSnapshot:
        if pub is not self._pub:
            self._pub, self._plain, self._with_ids = pub, None, None
        if include_check_ids:
            if self._with_ids is None:
                self._with_ids = _snapshot(pub, True)
            return self._with_ids
        if self._plain is None:
            self._plain = _snapshot(pub, False)
        return self._plain


def _snapshot(pub: TickResult, include_check_ids: bool) -> pb.HealthSnapshot:
    msg = pb.HealthSnapshot(
        registry_version=pub.registry.version,
        sequence=pub.sequence,
        generated_unix_ms=pub.generated_unix_ms,
        check_count=pub.registry.check_count,
        states=pub.states,
        warming=pub.warming,
    )
    if include_check_ids:
        msg.check_ids.extend(pub.registry.ids)
    return msg


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode,
                 details: str) -> NoReturn:
    """context.abort, which always raises (said here for the type checker)."""
    await context.abort(code, details)
    raise AssertionError("ServicerContext.abort returned")


class HealthService(pb_grpc.HealthServicer):
    def __init__(self, state: AggregatorState, hub: LatestHub[TickResult]) -> None:
        self._state = state
        self._hub = hub
        self._cache = SnapshotCache()
        self._big_queries = asyncio.Semaphore(1)

    async def Get(self, request: pb.GetRequest,
                  context: grpc.aio.ServicerContext) -> pb.HealthSnapshot:
        pub = self._state.latest
        if pub is None:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, NO_TICK_YET)
        return self._cache.get(pub, request.include_check_ids)

    async def Watch(self, request: pb.WatchRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[pb.HealthSnapshot]:
        # The current tick first, so a new watcher never waits a whole tick.
        async for pub in self._hub.subscribe(first=self._state.latest):
            yield self._cache.get(pub, request.include_check_ids)

    async def Query(self, request: pb.QueryRequest,
                    context: grpc.aio.ServicerContext) -> pb.QueryResponse:
        state = self._state
        pub = state.latest
        if pub is None:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, NO_TICK_YET)
        index = state.index if pub.registry is state.registry else pub.registry.index_of()
        ids = list(request.check_ids) or list(pub.registry.ids)
        unknown = [i for i in ids if i not in index]
        if unknown:
            shown = ", ".join(repr(i[:64]) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            await _abort(context, grpc.StatusCode.NOT_FOUND,
                                f"unknown check id {shown}{more}" if len(unknown) == 1
                                else f"unknown check ids {shown}{more}")
        idx = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
        # Per-checker votes come from the live slots, which follow the current
        # registry; right after a reload the latest tick may still be on the
        # previous one, and then the detail is left out rather than misread.
        if len(ids) <= DETAIL_LIMIT:
            detail = (state.checker_detail(idx) if pub.registry is state.registry else None)
            return await asyncio.to_thread(_response, pub, ids, idx, detail)
        # Messages are built from immutable copies in a worker thread, so the
        # event loop keeps ticking and ingesting; big answers one at a time.
        async with self._big_queries:
            return await asyncio.to_thread(_response, pub, ids, idx, None)


def _response(res: TickResult, ids: list[str], idx: np.ndarray,
              detail: CheckerDetail | None) -> pb.QueryResponse:
    status = res.status_of(idx).tolist()
    healthy, reporting = (v.tolist() for v in res.votes(idx))
    last_change = res.last_change_of(idx).tolist()
    out = pb.QueryResponse(registry_version=res.registry.version, sequence=res.sequence,
                           warming=res.warming)
    add = out.checks.add
    if detail is not None:
        checkers = list(zip(detail.checker_ids, detail.regions, detail.ages_ms.tolist(),
                            strict=True))
        votes = detail.votes.tolist()
    for n, check_id in enumerate(ids):
        ch = add(check_id=check_id, status=status[n], healthy_votes=healthy[n],
                 reporting_votes=reporting[n], last_change_unix_ms=last_change[n])
        if detail is not None:
            probes = detail.probes[n] if detail.probes else None
            for k, ((cid, region, age), vote) in enumerate(
                    zip(checkers, votes[n], strict=True)):
                reason, latency, detail_age = probes[k] if probes else ("", 0.0, -1)
                ch.checkers.add(checker_id=cid, region=region, vote=vote, snapshot_age_ms=age,
                                reason=reason, latency_ms=latency, detail_age_ms=detail_age)
    return out
