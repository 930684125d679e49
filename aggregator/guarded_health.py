"""The Health service with its Watch streams bounded.

A watcher costs the aggregator a slot in the hub and, while it does not
read, the buffers of the message gRPC is trying to send it. So Watch
streams are admitted up to a total and a per-client cap
(:class:`healthplane.aggregator.limits.Admission`, refused with
RESOURCE_EXHAUSTED), and a watcher that has not taken a tick for
``stall`` seconds is ended (DEADLINE_EXCEEDED, counted in ``stalled``): a
live DNS front reads every tick within milliseconds.
"""

from __future__ import annotations

import asyncio

import grpc
from healthplane.aggregator.health_service import HealthService
from healthplane.aggregator.limits import Admission, peer_key
from healthplane.aggregator.state import AggregatorState
from healthplane.aggregator.tick_result import TickResult
from healthplane.aggregator.watchers import LatestHub
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb


class GuardedHealthService(HealthService):
    def __init__(self, state: AggregatorState, hub: LatestHub[TickResult], *,
                 admission: Admission, authenticate: bool, stall: float) -> None:
        super().__init__(state, hub)
        self.admission = admission
        self._authenticate = authenticate
        self._stall = stall
        self.stalled = 0

    async def Watch(self, request: pb.WatchRequest,  # type: ignore[override]
                    context: grpc.aio.ServicerContext) -> None:
        peer = peer_key(context, self._authenticate)
        refused = self.admission.acquire(peer)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        try:
            async for pub in self._hub.subscribe(first=self._state.latest):
                msg = self._cache.get(pub, request.include_check_ids)
                try:
                    async with asyncio.timeout(self._stall):
                        await context.write(msg)
                except TimeoutError:
                    self.stalled += 1
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                        f"watcher read nothing for {self._stall:g} s")
        finally:
            self.admission.release(peer)
