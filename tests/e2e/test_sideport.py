"""Every component's HTTP side port on a real fleet, and README's metric tables against it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from healthplane.deploy.launcher import Fleet, free_port
from prometheus_client.parser import text_string_to_metric_families

from healthplane import __version__
from tests.e2e.conftest import PROBED_IDS, wait_for

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ports(fleet: Fleet) -> dict[str, list[int]]:
    assert fleet.dns_http_port is not None
    return {"checker": list(fleet.checker_metrics_ports.values()),
            "aggregator": list(fleet.aggregator_http_ports),
            "dns": [fleet.dns_http_port]}


def test_every_component_serves_health_readiness_and_process_metrics(fleet: Fleet) -> None:
    for component, numbers in ports(fleet).items():
        for port in numbers:
            assert get(port, "/healthz") == (200, "ok\n"), component
            wait_for(lambda port=port: get(port, "/readyz")[0] == 200, 15,
                     what=f"{component} on {port} ready")
            assert get(port, "/nope")[0] == 404, component
            status, text = get(port, "/metrics")
            assert status == 200
            assert f'healthplane_build_info{{version="{__version__}"}} 1.0' in text, component
            assert re.search(r"^process_resident_memory_bytes \d", text, re.M), component
            assert re.search(r"^process_max_fds \d", text, re.M), component


def test_status_json_on_every_aggregator(fleet: Fleet) -> None:
    def voted(port: int) -> bool:
        doc = json.loads(get(port, "/api/v1/checks")[1])
        return all(c["reporting_votes"] == 3 for c in doc["checks"] if c["id"] in PROBED_IDS)

    for port in fleet.aggregator_http_ports:
        wait_for(lambda port=port: voted(port), 20, what="every check voted on by 3 checkers")
        status, text = get(port, "/api/v1/checks")
        assert status == 200
        doc = json.loads(text)
        assert doc["regions"] == ["us-east", "eu-west", "ap-south"]
        rows = {c["id"]: c for c in doc["checks"]}
        for cid in PROBED_IDS:
            assert rows[cid]["status"] == "healthy"
            assert rows[cid]["by_region"] == [[1, 1]] * 3, rows[cid]
        status, html = get(port, "/")
        assert status == 200 and "healthplane status" in html


def documented(component: str) -> set[str]:
    """Metric names in README's table for one component (its "Metrics" section)."""
    text = README.read_text()
    section = text[text.index(f"#### {component} metrics"):]
    section = section[:section.index("\n#", 1)]
    return set(re.findall(r"^\| `([a-z_:]+)`", section, re.M))


def served(port: int) -> set[str]:
    """Family names as exposed: counters with _total, info with _info."""
    names = set()
    for fam in text_string_to_metric_families(get(port, "/metrics")[1]):
        suffix = {"counter": "_total", "info": "_info"}.get(fam.type, "")
        names.add(fam.name + suffix)
    return names


@pytest.mark.parametrize(("component", "heading"), [
    ("checker", "Checker"), ("aggregator", "Aggregator"), ("dns", "DNS front")])
def test_readme_metric_tables_match_the_endpoints(fleet: Fleet, component: str,
                                                  heading: str) -> None:
    port = ports(fleet)[component][0]
    live = served(port)
    common = documented("Common")
    own = documented(heading)
    assert common <= live, f"documented but not served: {sorted(common - live)}"
    assert own <= live, f"documented but not served: {sorted(own - live)}"
    missing = live - common - own
    assert not missing, f"served by the {component} but not in README: {sorted(missing)}"


def test_pdns_backend_side_port_and_its_readme_table(fleet: Fleet, tmp_path: Path) -> None:
    assert fleet.zone is not None
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthplane", "pdns-backend", "--zone", str(fleet.zone),
         "--aggregator", fleet.aggregator_addresses[0], "--socket", str(tmp_path / "pdns.sock"),
         "--http", f"127.0.0.1:{port}", *fleet.tls_flags("dns")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: get(port, "/readyz")[0] == 200, 20, what="pdns-backend ready")
        assert get(port, "/healthz") == (200, "ok\n") and get(port, "/nope")[0] == 404
        live = served(port)
        documented_names = documented("Common") | documented("PowerDNS backend")
        assert documented_names == live
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
