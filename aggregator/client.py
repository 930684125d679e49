"""A small synchronous client for an aggregator's Health service.

Used by ``healthplane query``; handy in scripts too. Every failure becomes an
:class:`AggregatorError` whose message is one line for the operator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from healthplane.aggregator.health_service import NO_TICK_YET
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.tls import TlsFiles, secure_channel

T = TypeVar("T")

# Query answers for every check of a big registry can be large.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class AggregatorError(Exception):
    """A failed call, with a one-line message."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class AggregatorClient:
    """``with AggregatorClient("127.0.0.1:7000") as c: c.query(["web-1"])``."""

    def __init__(self, target: str, timeout: float = 3.0, tls: TlsFiles | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = secure_channel(
            target, tls, [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES)], aio=False)
        self._stub = pb_grpc.HealthStub(self._channel)

    def __enter__(self) -> AggregatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def query(self, check_ids: Sequence[str] = ()) -> pb.QueryResponse:
        return self._call(self._stub.Query, pb.QueryRequest(check_ids=list(check_ids)))

    def get(self, include_check_ids: bool = False) -> pb.HealthSnapshot:
        return self._call(self._stub.Get, pb.GetRequest(include_check_ids=include_check_ids))

    def _call(self, method: Callable[..., T], request: Message) -> T:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise AggregatorError(self._describe(exc), exc.code()) from None

    def _describe(self, exc: grpc.RpcError) -> str:
        code = exc.code()
        details = (exc.details() or "").splitlines()[0:1]
        if code == grpc.StatusCode.UNAVAILABLE and details and details[0] == NO_TICK_YET:
            return f"aggregator at {self.target}: {NO_TICK_YET}"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"cannot reach aggregator at {self.target}: no answer within {self.timeout:g}s"
        if code == grpc.StatusCode.UNAVAILABLE:
            return f"cannot reach aggregator at {self.target}: connection failed"
        if code == grpc.StatusCode.NOT_FOUND:
            return details[0] if details else "not found"
        text = f"aggregator at {self.target}: {code.name}"
        return f"{text}: {details[0]}" if details else text
