"""Shared helpers for the aggregator server tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import grpc
import pytest
from healthplane.aggregator import tick_kernel
from healthplane.proto import codec
from healthplane.proto.config.model import Check, Fleet, Registry
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

REGIONS = {"us-east": ("use1-a", "use1-b"), "eu-west": ("euw1-a",)}


def make_registry(ids: Sequence[str] = ("web-1", "web-2", "web-3", "db-1", "api-1"),
                  version: str = "v1", **per_check: dict) -> Registry:
    checks = tuple(Check(id=i, type="tcp", host="192.0.2.1", port=80, **per_check.get(i, {}))
                   for i in ids)
    return Registry(checks=checks, version=version)


def make_fleet(**kw) -> Fleet:
    base = dict(regions=dict(REGIONS), aggregators=("127.0.0.1:7000",), tick=1.0,
                stale_after=3.0)
    base.update(kw)
    return Fleet(**base)


_SEQUENCE = itertools.count(1)


def snap(checker: str, region: str, registry: Registry, states: Sequence[int], *,
         version: str | None = None, seq: int | None = None,
         incarnation: int = 1) -> pb.CheckerSnapshot:
    """A snapshot; without seq, one above every earlier one (as a live checker sends)."""
    seq = next(_SEQUENCE) if seq is None else seq
    return pb.CheckerSnapshot(incarnation=incarnation,
        checker_id=checker, region=region,
        registry_version=registry.version if version is None else version,
        sequence=seq, sent_unix_ms=0, check_count=len(states), states=codec.encode(states))


async def report(port: int, messages: Sequence[pb.CheckerSnapshot | bytes]) -> pb.ReportSummary:
    """Send messages on one real Report stream; raw bytes go out unparsed."""
    async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as ch:
        call = ch.stream_unary(
            "/healthplane.v1.Ingest/Report",
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=pb.ReportSummary.FromString)

        async def gen():
            for m in messages:
                yield m

        return await call(gen(), timeout=10)


def health_stub(channel: grpc.aio.Channel) -> pb_grpc.HealthStub:
    return pb_grpc.HealthStub(channel)


def _tick_paths() -> list:
    compiled = pytest.param(
        "compiled", marks=pytest.mark.skipif(
            tick_kernel.KERNEL is None, reason="the tick kernel is not built (or forced off)"))
    return ["python", compiled]


@pytest.fixture(params=_tick_paths())
def tick_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every tick engine the test builds runs the numpy passes, then the compiled ones."""
    compiled = request.param == "compiled"
    monkeypatch.setattr(tick_kernel, "default_passes", lambda: tick_kernel.passes_for(compiled))
    return request.param
