"""``Ingest.Report``: checkers stream snapshots in; each valid one overwrites its slot.

The handler is deliberately thin: validate, copy into the checker's slot,
go on to the next message. It ends the stream early, with the registry
versions it accepts in the ReportSummary, after a snapshot of a version it
does not know and after the aggregator adopted a new registry: that is how
a checker learns which version to report in during a rollout. It never
computes votes and never queues, so a checker flooding snapshots costs the
aggregator one copy each and changes nothing at the tick. A bad message is
dropped, counted by reason, and the stream continues.

Size is bounded twice. The request deserializer drops a message larger than
any valid snapshot of the accepted registries (``oversized``) before
parsing it, and one that does not parse (``malformed``), without ending the
stream. gRPC's ``max_receive_message_length`` (see
:func:`aggregator.state.transport_limit`) is the hard cap: a message above
it ends its stream with RESOURCE_EXHAUSTED before it is buffered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import DecodeError
from healthplane.aggregator.state import MALFORMED, OVERSIZED, UNKNOWN_VERSION, AggregatorState
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

log = logging.getLogger("healthplane.aggregator.ingest")

SERVICE_NAME = "healthplane.v1.Ingest"


class _Rejected:
    """Stands in for a message the deserializer refused, so the stream goes on."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_OVERSIZED = _Rejected(OVERSIZED)
_MALFORMED = _Rejected(MALFORMED)


class IngestService:
    """The Ingest servicer. Register with :meth:`add_to_server`."""

    def __init__(self, state: AggregatorState) -> None:
        self._state = state

    def _deserialize(self, raw: bytes) -> pb.CheckerSnapshot | _Rejected:
        # Runs for every message before the handler sees it; refusing here
        # costs nothing per byte, so an oversized flood is cheap to shed.
        if len(raw) > self._state.max_message:
            return _OVERSIZED
        try:
            return pb.CheckerSnapshot.FromString(raw)
        except DecodeError:
            return _MALFORMED

    async def Report(self, request_iterator: AsyncIterator[pb.CheckerSnapshot | _Rejected],
                     context: grpc.aio.ServicerContext) -> pb.ReportSummary:
        accepted = dropped = 0
        state = self._state
        epoch = state.epoch
        async for msg in request_iterator:
            if isinstance(msg, _Rejected):
                state.count_drop(msg.reason)
                reason: str | None = msg.reason
            else:
                reason = state.accept(msg.checker_id, msg.region, msg.registry_version,
                                      msg.check_count, msg.states, msg.details)
            if reason is None:
                accepted += 1
            else:
                dropped += 1
                # Debug only: a misconfigured checker would otherwise fill the
                # log at its report rate; the counters carry the signal.
                log.debug("dropped snapshot: %s", reason)
            if reason == UNKNOWN_VERSION or state.epoch != epoch:
                # The checker reports in a registry version this aggregator
                # does not know, or the versions known here just changed:
                # end the stream with the list, so the checker goes on in a
                # version both know (see checker.streams).
                break
        return pb.ReportSummary(accepted=accepted, dropped=dropped,
                                registry_versions=state.accepted_versions())

    def add_to_server(self, server: grpc.aio.Server) -> None:
        handler = grpc.stream_unary_rpc_method_handler(
            self.Report,
            request_deserializer=self._deserialize,
            response_serializer=pb.ReportSummary.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Report": handler}),))
