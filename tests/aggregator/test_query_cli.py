"""`healthplane query --json` and its exit status, against a real aggregator process."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aggregator.test_cli import CHECKS, FLEET, Proc, healthplane, query


@pytest.fixture
def target(tmp_path: Path) -> Iterator[str]:
    # No checker ever reports and unknown_as is unhealthy: every check is
    # unhealthy except maint, which is disabled and so always healthy.
    (tmp_path / "checks.yaml").write_text(CHECKS)
    (tmp_path / "fleet.yaml").write_text(FLEET + "unknown_as: unhealthy\n")
    proc = Proc(healthplane("aggregator", "--checks", str(tmp_path / "checks.yaml"),
                            "--fleet", str(tmp_path / "fleet.yaml"), "--listen", "127.0.0.1:0",
                            "--reload-interval", "0"))
    try:
        port = int(proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        yield f"127.0.0.1:{port}"
    finally:
        proc.p.send_signal(signal.SIGTERM)
        try:
            proc.p.wait(10)
        except subprocess.TimeoutExpired:
            proc.p.kill()
            proc.p.wait()


def test_json_document_is_the_contract(target: str) -> None:
    r = query("--aggregator", target, "--json", "web-1", "maint")
    assert r.returncode == 2, r.stderr          # web-1 is not healthy
    doc = json.loads(r.stdout)
    assert set(doc) == {"registry_version", "sequence", "checks"}
    assert isinstance(doc["registry_version"], str) and doc["sequence"] >= 1
    assert [c["id"] for c in doc["checks"]] == ["web-1", "maint"]
    web = doc["checks"][0]
    assert set(web) == {"id", "status", "healthy_votes", "reporting_votes",
                        "last_change_unix_ms", "checkers"}
    assert (web["status"], web["healthy_votes"], web["reporting_votes"]) == ("unhealthy", 0, 0)
    assert doc["checks"][1]["status"] == "healthy"
    assert [(v["id"], v["region"]) for v in web["checkers"]] == [("use1-a", "us-east"),
                                                                  ("euw1-a", "eu-west")]
    for vote in web["checkers"]:
        assert set(vote) == {"id", "region", "vote", "snapshot_age_ms", "reason", "latency_ms"}
        assert vote["vote"] == "unknown" and vote["snapshot_age_ms"] == -1


@pytest.mark.parametrize(("args", "status"), [
    ((), 0),                      # none named: 0 whatever the health
    (("maint",), 0),              # every named check healthy
    (("web-1",), 2),              # a named check unhealthy
    (("maint", "web-2"), 2),
    (("nope",), 1),               # an unknown id is an error
])
def test_exit_status(target: str, args: tuple[str, ...], status: int) -> None:
    for fmt in ((), ("--json",)):
        r = query("--aggregator", target, *fmt, *args)
        assert r.returncode == status, (fmt, args, r.stdout, r.stderr)


def test_table_is_safe_for_awk(target: str) -> None:
    r = query("--aggregator", target)
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert {len(row) for row in rows} == {5}, r.stdout
