"""The ``Health`` service: Get the latest tick, Watch every tick, Query checks by id.

Each tick is turned into protobuf at most once per shape (with or without
check ids), however many callers ask, and Watch hands each watcher only the
newest tick (see :mod:`aggregator.watchers`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np

from aggregator.state import AggregatorState, Published
from aggregator.watchers import LatestHub
from proto.healthplane.v1 import healthplane_pb2 as pb
from proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

NO_TICK_YET = "no tick has been computed yet"


class SnapshotCache:
    """The HealthSnapshot messages of the latest tick, built on first use."""

    def __init__(self) -> None:
        self._pub: Published | None = None
        self._plain: pb.HealthSnapshot | None = None
        self._with_ids: pb.HealthSnapshot | None = None

    def get(self, pub: Published, include_check_ids: bool) -> pb.HealthSnapshot:
        if pub is not self._pub:
            self._pub, self._plain, self._with_ids = pub, None, None
        if include_check_ids:
            if self._with_ids is None:
                self._with_ids = _snapshot(pub, True)
            return self._with_ids
        if self._plain is None:
            self._plain = _snapshot(pub, False)
        return self._plain


def _snapshot(pub: Published, include_check_ids: bool) -> pb.HealthSnapshot:
    msg = pb.HealthSnapshot(
        registry_version=pub.registry.version,
        sequence=pub.sequence,
        generated_unix_ms=pub.generated_unix_ms,
        check_count=pub.registry.check_count,
        states=pub.states,
    )
    if include_check_ids:
        msg.check_ids.extend(pub.registry.ids)
    return msg


class HealthService(pb_grpc.HealthServicer):
    def __init__(self, state: AggregatorState, hub: LatestHub[Published]) -> None:
        self._state = state
        self._hub = hub
        self._cache = SnapshotCache()

    async def Get(self, request: pb.GetRequest,
                  context: grpc.aio.ServicerContext) -> pb.HealthSnapshot:
        pub = self._state.latest
        if pub is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, NO_TICK_YET)
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
            await context.abort(grpc.StatusCode.UNAVAILABLE, NO_TICK_YET)
        index = state.index if pub.registry is state.registry else pub.registry.index_of()
        ids = list(request.check_ids) or list(pub.registry.ids)
        unknown = [i for i in ids if i not in index]
        if unknown:
            shown = ", ".join(repr(i[:64]) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"unknown check id {shown}{more}" if len(unknown) == 1
                                else f"unknown check ids {shown}{more}")
        res = pub.result
        idx = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
        status = res.status_of(idx)
        healthy, reporting = res.votes(idx)
        last_change = res.last_change_of(idx)
        out = pb.QueryResponse(registry_version=pub.registry.version, sequence=pub.sequence)
        # Per-checker votes come from the live slots, which follow the current
        # registry; right after a reload the latest tick may still be on the
        # previous one, and then the detail is left out rather than misread.
        same_registry = pub.registry is state.registry
        for n, check_id in enumerate(ids):
            ch = out.checks.add(
                check_id=check_id,
                status=int(status[n]),
                healthy_votes=int(healthy[n]),
                reporting_votes=int(reporting[n]),
                last_change_unix_ms=int(last_change[n]),
            )
            if same_registry:
                for cid, region, vote, age in state.checker_votes(int(idx[n])):
                    ch.checkers.add(checker_id=cid, region=region, vote=vote,
                                    snapshot_age_ms=age)
        return out
