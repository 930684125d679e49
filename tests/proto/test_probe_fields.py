"""checks.yaml fields that shape a probe: values, defaults and what they mean
for the registry version (the bad files live in testdata/bad/checks)."""

from __future__ import annotations

import json
from pathlib import Path

from healthplane.proto.config.loader import parse_checks
from healthplane.proto.config.model import Check

TEXT = """\
checks:
  - id: web
    type: https
    host: www.example.com
    port: 443
    method: HEAD
    headers: {X-Probe: "1", Authorization: "Bearer abc"}
    expected_status: [200, "300-399", 401]
    ip_family: ipv6
  - id: kv
    type: tcp
    host: 192.0.2.7
    port: 6379
    send: "PING\\r\\n"
    expect: "+PONG"
  - id: rpc
    type: grpc
    host: rpc.example.com
    port: 443
    tls: true
    verify_tls: true
    hostname: rpc.example.com
  - id: ns
    type: dns
    host: 192.0.2.53
    query_name: www.example.com
  - id: ns-mx
    type: dns
    host: 192.0.2.53
    port: 5353
    query_name: example.com.
    query_type: mx
    expect_rcode: nxdomain
"""


def test_every_probe_field_is_read() -> None:
    web, kv, rpc, ns, mx = parse_checks(TEXT, "checks.yaml").checks
    assert (web.method, web.ip_family) == ("HEAD", "ipv6")
    assert web.headers == (("X-Probe", "1"), ("Authorization", "Bearer abc"))
    assert web.expected_status == ((200, 200), (300, 399), (401, 401))
    assert (kv.send, kv.expect) == ("PING\r\n", "+PONG")
    assert (rpc.tls, rpc.verify_tls, rpc.hostname) == (True, True, "rpc.example.com")
    assert (ns.port, ns.query_name, ns.query_type, ns.expect_rcode) == (
        53, "www.example.com.", "A", "NOERROR")
    assert (mx.port, mx.query_name, mx.query_type, mx.expect_rcode) == (
        5353, "example.com.", "MX", "NXDOMAIN")


def test_defaults() -> None:
    check = Check(id="x", type="http", host="192.0.2.1", port=80)
    assert (check.method, check.headers, check.expected_status) == ("GET", (), ((200, 399),))
    assert (check.send, check.expect, check.ip_family, check.tls) == (None, None, "any", False)
    assert (check.query_type, check.expect_rcode) == ("A", "NOERROR")


def test_a_written_default_keeps_the_version() -> None:
    bare = "checks:\n  - {id: a, type: http, host: 192.0.2.1, port: 80}\n"
    spelled = ('checks:\n  - {id: a, type: http, host: 192.0.2.1, port: 80, method: GET,'
               ' expected_status: "200-399", ip_family: any}\n')
    other = ("checks:\n  - {id: a, type: http, host: 192.0.2.1, port: 80,"
             " expected_status: 200}\n")
    versions = [parse_checks(t, "c.yaml").version for t in (bare, spelled, other)]
    assert versions[0] == versions[1] != versions[2]


def test_json_fast_path_reads_every_probe_field_as_yaml_does(tmp_path: Path) -> None:
    import yaml
    from healthplane.proto.config.loader import load_checks

    doc = yaml.safe_load(TEXT)
    (tmp_path / "checks.json").write_text(json.dumps(doc))
    (tmp_path / "checks.yaml").write_text(TEXT)
    from_json = load_checks(tmp_path / "checks.json")
    from_yaml = load_checks(tmp_path / "checks.yaml")
    assert from_json.checks == from_yaml.checks and from_json.version == from_yaml.version
    assert from_json.checks[0].headers == (("X-Probe", "1"), ("Authorization", "Bearer abc"))


def test_json_applies_the_rules_joining_probe_fields(tmp_path: Path) -> None:
    import pytest
    from healthplane.proto.config.errors import ConfigError
    from healthplane.proto.config.loader import load_checks

    doc = {"checks": [{"id": "w", "type": "http", "host": "192.0.2.1", "port": 80,
                       "method": "HEAD", "search": "ok"}]}
    path = tmp_path / "checks.json"
    path.write_text(json.dumps(doc, indent=1))
    with pytest.raises(ConfigError) as info:
        load_checks(path)
    assert info.value.errors == [
        f"{path}:9: checks[0].search: needs method GET (HEAD has no body)"]


def test_json_registry_reads_the_same() -> None:
    doc = {"checks": [{"id": "web", "type": "http", "host": "192.0.2.1", "port": 80,
                       "headers": {"X-Probe": "1"}, "expected_status": ["200-204"]},
                      {"id": "ns", "type": "dns", "host": "192.0.2.53",
                       "query_name": "www.example.com."}]}
    from_json = parse_checks(json.dumps(doc, indent=1), "checks.json")
    web, ns = from_json.checks
    assert web.headers == (("X-Probe", "1"),) and web.expected_status == ((200, 204),)
    assert ns.port == 53


def test_versions_of_registries_without_the_new_fields_are_unchanged() -> None:
    # The version of the demo's registry before probe fields existed: processes
    # of both releases must agree on it during a rolling upgrade.
    from healthplane.proto.config.loader import load_checks, load_fleet
    from healthplane.proto.config.version import EXTENSION_FIELDS, canonical_json

    examples = Path(__file__).resolve().parents[2] / "deploy" / "examples"
    registry = load_checks(examples / "checks.yaml", load_fleet(examples / "fleet.yaml"))
    assert registry.version == "435ffb581da18f1f"
    doc = json.loads(canonical_json(registry.checks))
    assert not set(EXTENSION_FIELDS) & set().union(*doc["checks"])
    used = parse_checks(TEXT, "checks.yaml")
    assert {"method", "headers", "query_name"} <= set().union(
        *json.loads(canonical_json(used.checks))["checks"])
