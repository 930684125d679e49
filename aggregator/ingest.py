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

Identity. With TLS (``authenticate=True``) a snapshot counts only when its
``checker_id`` is a DNS name in the subjectAltName of the client certificate
of the stream it came on; any other is dropped as ``identity_mismatch``, and
the stream goes on. Order. A snapshot must carry a higher
``(incarnation, sequence)`` than the last one accepted from its checker, on
any stream (see :mod:`healthplane.aggregator.sequence`); otherwise it is
dropped as ``stale_sequence``. Streams are admitted up to the caps of
:class:`healthplane.aggregator.limits.Admission`; past them a stream is
refused with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import DecodeError
from healthplane.aggregator.limits import Admission, peer_key
from healthplane.aggregator.sequence import SequenceMarks
from healthplane.aggregator.state import (
    IDENTITY_MISMATCH,
    MALFORMED,
    OVERSIZED,
    STALE_SEQUENCE,
    UNKNOWN_VERSION,
    AggregatorState,
)
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

from healthplane.runtime.tls import peer_dns_names

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

    def __init__(self, state: AggregatorState, *, authenticate: bool = False,
                 marks: SequenceMarks | None = None,
                 admission: Admission | None = None) -> None:
        self._state = state
        self._authenticate = authenticate
        self.marks = marks if marks is not None else SequenceMarks()
        self.admission = admission if admission is not None else Admission(
            "Report", 1 << 30, 1 << 30)

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
        peer = peer_key(context, self._authenticate)
        refused = self.admission.acquire(peer)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        try:
            return await self._report(request_iterator, context)
        finally:
            self.admission.release(peer)

    async def _report(self, request_iterator: AsyncIterator[pb.CheckerSnapshot | _Rejected],
                      context: grpc.aio.ServicerContext) -> pb.ReportSummary:
        accepted = dropped = 0
        state, marks = self._state, self.marks
        epoch = state.epoch
        # Read once per stream: the certificate cannot change under a stream.
        names = peer_dns_names(context) if self._authenticate else None
        warned = False
        async for msg in request_iterator:
            if isinstance(msg, _Rejected):
                state.count_drop(msg.reason)
                reason: str | None = msg.reason
            elif names is not None and msg.checker_id not in names:
                state.count_drop(IDENTITY_MISMATCH)
                reason = IDENTITY_MISMATCH
                if not warned:
                    warned = True   # once per stream: the counter carries the rate
                    log.warning("snapshot for a checker its certificate does not name; "
                                "dropping them (identity_mismatch)",
                                extra={"claimed": msg.checker_id[:80],
                                       "certificate": ",".join(sorted(names))[:200] or "-",
                                       "peer": context.peer()})
            else:
                now = state.clock.now()
                if not marks.admits(msg.checker_id, msg.incarnation, msg.sequence, now,
                                    state.fleet.stale_after):
                    state.count_drop(STALE_SEQUENCE)
                    reason = STALE_SEQUENCE
                else:
                    reason = state.accept(msg.checker_id, msg.region, msg.registry_version,
                                          msg.check_count, msg.states, msg.details)
                    if reason is None:
                        marks.record(msg.checker_id, msg.incarnation, msg.sequence, now)
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

