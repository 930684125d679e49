"""The Health service with its Watch streams bounded.

A watcher costs the aggregator a slot in the hub and, while it does not
read, the message gRPC is trying to send it plus that stream's share of the
HTTP/2 flow-control windows. So Watch streams are admitted up to a total and
a per-client cap (:class:`healthplane.aggregator.limits.Admission`; past
them refused with RESOURCE_EXHAUSTED and counted): what unread watchers can
pin is at most the cap times one message each, whoever opens them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from healthplane.aggregator.health_service import HealthService
from healthplane.aggregator.limits import Admission, peer_key
from healthplane.aggregator.state import AggregatorState
from healthplane.aggregator.tick_result import TickResult
from healthplane.aggregator.watchers import LatestHub
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb


class GuardedHealthService(HealthService):
    def __init__(self, state: AggregatorState, hub: LatestHub[TickResult], *,
                 admission: Admission, authenticate: bool) -> None:
        super().__init__(state, hub)
        self.admission = admission
        self._authenticate = authenticate

    async def Watch(self, request: pb.WatchRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[pb.HealthSnapshot]:
        peer = peer_key(context, self._authenticate)
        refused = self.admission.acquire(peer)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        try:
            async for msg in super().Watch(request, context):
                yield msg
        finally:
            self.admission.release(peer)
