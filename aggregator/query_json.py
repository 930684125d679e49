"""The JSON form of a Health.Query answer: ``healthplane query --json``.

The document (design.md's contract; fields are only ever added)::

    registry_version  str
    sequence          int     the tick the answer comes from
    checks            [{id, status, healthy_votes, reporting_votes,
                        last_change_unix_ms, checkers: [{id, region, vote,
                        snapshot_age_ms, reason, latency_ms}]}]

``status`` and ``vote`` are "healthy", "unhealthy" or "unknown";
``snapshot_age_ms`` is -1 for a checker that never reported; ``reason`` is
"" and ``latency_ms`` 0 when unknown. ``checkers`` is empty when the
aggregator left out per-checker detail (queries for many checks).
"""

from __future__ import annotations

from typing import Any

from healthplane.proto.codec import state_name
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb


def _vote(v: Any) -> dict[str, Any]:
    # reason and latency_ms are extensions: an older aggregator's answer lacks them.
    return {"id": v.checker_id, "region": v.region, "vote": state_name(v.vote),
            "snapshot_age_ms": int(v.snapshot_age_ms),
            "reason": str(getattr(v, "reason", "")),
            "latency_ms": float(getattr(v, "latency_ms", 0.0))}


def query_document(resp: pb.QueryResponse) -> dict[str, Any]:
    """The JSON document for one QueryResponse."""
    return {
        "registry_version": resp.registry_version,
        "sequence": int(resp.sequence),
        "checks": [
            {"id": ch.check_id, "status": state_name(ch.status),
             "healthy_votes": int(ch.healthy_votes),
             "reporting_votes": int(ch.reporting_votes),
             "last_change_unix_ms": int(ch.last_change_unix_ms),
             "checkers": [_vote(v) for v in ch.checkers]}
            for ch in resp.checks],
    }
