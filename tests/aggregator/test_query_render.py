"""The query table and JSON, rendered from a response (the process tests cover the rest)."""

from __future__ import annotations

from healthplane.aggregator.query_cli import render
from healthplane.aggregator.query_json import query_document
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb


def _response() -> pb.QueryResponse:
    resp = pb.QueryResponse(registry_version="abc", sequence=7)
    ch = resp.checks.add(check_id="web-1", status=pb.STATUS_UNHEALTHY, healthy_votes=1,
                         reporting_votes=3, last_change_unix_ms=1_700_000_000_000)
    ch.checkers.add(checker_id="use1-a", region="us-east", vote=pb.STATUS_HEALTHY,
                    snapshot_age_ms=800)
    ch.checkers.add(checker_id="euw1-a", region="eu-west", vote=pb.STATUS_UNKNOWN,
                    snapshot_age_ms=-1, detail_age_ms=-1)
    resp.checks.add(check_id="api-primary", status=pb.STATUS_HEALTHY)
    return resp


def test_table_columns_times_and_checker_detail():
    resp = _response()
    text = render(resp, checkers=True, now=1_700_000_090.0)
    lines = text.splitlines()
    assert lines[0] == "registry abc  tick 7"
    assert [ln.split() for ln in lines[1:]] == [
        ["CHECK", "STATUS", "VOTES", "LAST_CHANGE", "AGO"],
        ["web-1", "unhealthy", "1/3", "2023-11-14T22:13:20Z", "1m30s"],
        ["use1-a", "us-east", "healthy", "0.8s", "-", "-", "-"],
        ["euw1-a", "eu-west", "unknown", "-", "-", "-", "-"],
        ["api-primary", "healthy", "0/0", "never", "-"],
    ]
    assert lines[3].startswith("    use1-a")
    assert "use1-a" not in render(resp, checkers=False, now=1_700_000_090.0)


def test_json_document():
    doc = query_document(_response())
    assert doc["registry_version"] == "abc" and doc["sequence"] == 7
    web, api = doc["checks"]
    assert web == {
        "id": "web-1", "status": "unhealthy", "healthy_votes": 1, "reporting_votes": 3,
        "last_change_unix_ms": 1_700_000_000_000,
        "checkers": [
            {"id": "use1-a", "region": "us-east", "vote": "healthy", "snapshot_age_ms": 800,
             "reason": "", "latency_ms": 0.0},
            {"id": "euw1-a", "region": "eu-west", "vote": "unknown", "snapshot_age_ms": -1,
             "reason": "", "latency_ms": 0.0}]}
    assert api["checkers"] == [] and api["last_change_unix_ms"] == 0


def test_checker_rows_say_why():
    resp = pb.QueryResponse(registry_version="abc", sequence=7)
    ch = resp.checks.add(check_id="www", status=pb.STATUS_UNHEALTHY, reporting_votes=2)
    ch.checkers.add(checker_id="use1-a", region="us-east", vote=pb.STATUS_UNHEALTHY,
                    snapshot_age_ms=300, reason="status 503", latency_ms=12.34,
                    detail_age_ms=4000)
    ch.checkers.add(checker_id="euw1-a", region="eu-west", vote=pb.STATUS_UNKNOWN,
                    snapshot_age_ms=-1, detail_age_ms=-1)
    lines = render(resp, checkers=True, now=0.0).splitlines()
    assert lines[3].split() == ["use1-a", "us-east", "unhealthy", "0.3s", "status_503",
                                "12.3ms", "4.0s"]
    assert lines[4].split() == ["euw1-a", "eu-west", "unknown", "-", "-", "-", "-"]


def test_a_warming_aggregator_says_so():
    resp = pb.QueryResponse(registry_version="abc", sequence=7, warming=True)
    assert render(resp, checkers=False, now=0.0).splitlines()[0] == (
        "registry abc  tick 7  (warming up: not yet heard from every checker)")
