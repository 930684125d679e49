"""A tiny real Ingest server for checker tests: records every snapshot."""

from __future__ import annotations

import asyncio
import time

import grpc
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc


class RecordingIngest(pb_grpc.IngestServicer):
    def __init__(self) -> None:
        self.received: list[tuple[float, pb.CheckerSnapshot]] = []
        self.streams = 0
        self.arrived = asyncio.Event()

    async def Report(self, request_iterator, context):  # noqa: N802 (gRPC name)
        self.streams += 1
        accepted = 0
        async for snap in request_iterator:
            self.received.append((time.monotonic(), snap))
            accepted += 1
            self.arrived.set()
        return pb.ReportSummary(accepted=accepted)

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(self.received)} snapshots, wanted {count}")
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass


async def start_ingest(port: int = 0) -> tuple[grpc.aio.Server, RecordingIngest, int]:
    server = grpc.aio.server()
    servicer = RecordingIngest()
    pb_grpc.add_IngestServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, servicer, bound
