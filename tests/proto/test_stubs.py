"""The committed gRPC modules must be exactly what the .proto generates."""

from __future__ import annotations

import importlib.util

import pytest
from healthplane.proto import generate


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None,
                    reason="grpcio-tools is not installed (it comes with the 'test' extra)")
def test_committed_stubs_match_the_proto(tmp_path):
    fresh = generate.generate(tmp_path)
    assert set(fresh) == set(generate.OUTPUTS)
    stale = [name for name, text in fresh.items()
             if (generate.PROTO_ROOT / "healthplane" / "v1" / name).read_text() != text]
    assert not stale, (f"{', '.join(stale)} out of date with {generate.PROTO_FILE}; "
                       "run: python -m healthplane.proto.generate")


def test_stubs_import_and_carry_the_contract():
    from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
    from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

    snap = pb.CheckerSnapshot(checker_id="use1-a", check_count=5, states=b"\x40\x00")
    assert pb.CheckerSnapshot.FromString(snap.SerializeToString()) == snap
    fields = {f.name: f.number for f in pb.CheckerSnapshot.DESCRIPTOR.fields}
    assert fields == {"checker_id": 1, "region": 2, "registry_version": 3, "sequence": 4,
                      "sent_unix_ms": 5, "check_count": 6, "states": 7, "details": 8,
                      "incarnation": 16}
    vote = {f.name: f.number for f in pb.CheckerVote.DESCRIPTOR.fields}
    assert vote == {"checker_id": 1, "region": 2, "vote": 3, "snapshot_age_ms": 4,
                    "reason": 5, "latency_ms": 6, "detail_age_ms": 7}
    assert pb.STATUS_HEALTHY == 1 and pb.STATUS_UNHEALTHY == 2
    assert hasattr(pb_grpc, "IngestServicer") and hasattr(pb_grpc, "HealthStub")
