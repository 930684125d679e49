"""A fake aggregator endpoint for DNS-side tests: a real grpc.aio Health server.

It streams HealthSnapshot messages on a fixed tick from states the test sets,
and can stall (keep the stream open but stop ticking) or stop, so the
consumer's failover is exercised over real gRPC.

``generated_unix_ms`` is stamped on the tick grid (start + sequence x tick),
as an aggregator stamps its ticks, rather than read from the wall clock when
the message is built: a loaded machine then cannot distort the tick period a
consumer learns from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import grpc
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc


class FakeHealth(pb_grpc.HealthServicer):
    def __init__(self, ids: Sequence[str], *, tick: float = 0.1, version: str = "v1") -> None:
        self.ids = list(ids)
        self.states = [codec.UNKNOWN] * len(self.ids)
        self.version = version
        self.tick = tick
        self.sequence = 1
        self.stalled = False
        self.watch_requests: list[bool] = []   # include_check_ids of each Watch
        self.server: grpc.aio.Server | None = None
        self.address = ""
        self._ticker: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._epoch_ms = int(time.time() * 1000)

    def set(self, **states: int) -> None:
        """Set states by id (keyword names use '_' for '-')."""
        for cid, state in states.items():
            self.states[self.ids.index(cid.replace("_", "-"))] = state

    def set_registry(self, ids: Sequence[str], version: str) -> None:
        self.ids, self.version = list(ids), version
        self.states = [codec.UNKNOWN] * len(self.ids)

    def snapshot(self, with_ids: bool) -> pb.HealthSnapshot:
        msg = pb.HealthSnapshot(
            registry_version=self.version, sequence=self.sequence,
            generated_unix_ms=self._epoch_ms + round(self.sequence * self.tick * 1000),
            check_count=len(self.ids),
            states=codec.encode(self.states))
        if with_ids:
            msg.check_ids.extend(self.ids)
        return msg

    async def Get(self, request: pb.GetRequest, context: object) -> pb.HealthSnapshot:
        return self.snapshot(request.include_check_ids)

    async def Watch(self, request: pb.WatchRequest,
                    context: object) -> AsyncIterator[pb.HealthSnapshot]:
        self.watch_requests.append(request.include_check_ids)
        seen = -1
        while True:
            if self.sequence != seen:
                seen = self.sequence
                yield self.snapshot(request.include_check_ids)
            self._changed.clear()
            await self._changed.wait()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            if not self.stalled:
                self.sequence += 1
                self._changed.set()

    async def start(self, port: int = 0) -> str:
        self.server = grpc.aio.server()
        pb_grpc.add_HealthServicer_to_server(self, self.server)
        bound = self.server.add_insecure_port(f"127.0.0.1:{port}")
        if not bound:
            raise RuntimeError(f"cannot listen on 127.0.0.1:{port}")
        port = bound
        await self.server.start()
        self._ticker = asyncio.create_task(self._tick())
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.server is not None:
            await self.server.stop(0)
            self.server = None


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port held for the block: refused until a FakeHealth starts on it.

    The holder is bound with SO_REUSEPORT (as gRPC binds its listeners) but
    never listens, so a server can start, stop and start again on the port
    while nothing else on the machine (another process, or an outgoing
    connection picking it as its source port) can take it in between.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()
