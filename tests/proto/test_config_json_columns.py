"""checks.json read column by column answers as YAML does, whatever the values.

The JSON reader reads each distinct value of a field once and each distinct
combination of rule inputs once, and counts the text's colons to notice a
key written twice. Random registries whose fields mix types that compare
equal (1, 1.0, true), leave fields out, carry colons in strings and repeat
keys must read exactly as the same text does through the YAML path.
"""

from __future__ import annotations

import json
import random

import pytest
from healthplane.proto.config.checks import FIELDS_BY_TYPE, read_checks
from healthplane.proto.config.checks_json import read_checks_json
from healthplane.proto.config.model import Fleet

FLEET = Fleet(regions={"us-east": ("a",), "eu-west": ("b",)}, aggregators=("192.0.2.100:7000",))

VALUES = {
    "host": ["192.0.2.1", "2001:db8::1", "Web.Example.com", "10.0.0.1", "localhost", 5, "a b"],
    "port": [80, 443, 80.0, True, 1, 0, 70000, "80"],
    "interval": [10, 10.0, 2.5, 1, True, 400, "10"],
    "timeout": [1, 2.5, 4, 1.0, 20, False],
    "failure_threshold": [1, 3, 3.0, True, 11],
    "path": ["/", "/a:b", "/x", "no-slash", 1],
    "search": ["ok", "a:b", ""],
    "regions": [["us-east"], ["us-east", "eu-west"], ["mars"], [], [1], ["us-east", "us-east"]],
    "inverted": [True, False, 1, 0],
    "disabled": [False, True, 0],
    "hostname": ["h.example", "2001:db8::2"],
    "verify_tls": [True, False, 1],
    "grpc_service": ["svc", "a:b", 0],
    "healthy_threshold": [0, 1, 2, True, 3],
}
KINDS = ["http", "https", "tcp", "grpc", "calculated"]


def _registry(r: random.Random, count: int, mistakes: bool) -> list[dict]:
    entries: list[dict] = []
    for i in range(count):
        kind = r.choice(KINDS)
        entry: dict = {"id": f"c{i}", "type": kind}
        if kind == "calculated" and not mistakes and i == 0:
            kind = entry["type"] = "tcp"
        if kind == "calculated":
            entry["children"] = [f"c{j}" for j in range(max(0, i - 2), i)] or ["c0"]
            if r.random() < 0.5:
                entry["healthy_threshold"] = r.choice([0, 1] + ([True, 3, 1.0] if mistakes else []))
        else:
            for key in ("host", "port"):
                entry[key] = r.choice(VALUES[key] if mistakes else VALUES[key][:2])
            for key in ("interval", "timeout", "failure_threshold", "regions", "inverted",
                        "disabled", "path", "search", "hostname", "verify_tls", "grpc_service"):
                applies = key in FIELDS_BY_TYPE[kind] or mistakes and r.random() < 0.05
                if kind == "grpc" and key == "verify_tls" and not mistakes:
                    applies = False                 # it needs tls: true there
                if applies and r.random() < 0.3:
                    entry[key] = r.choice(VALUES[key] if mistakes else VALUES[key][:2])
        entries.append(entry)
    return entries


def _text(r: random.Random, entries: list[dict]) -> str:
    doc: dict = {"checks": entries}
    if r.random() < 0.3:
        doc["x-notes"] = {"a:b": ["c:d", {"e": 1}]}
    text = json.dumps(doc, indent=r.choice([None, 1]))
    if r.random() < 0.2:        # a key written twice
        text = text.replace('"port": 80', '"port": 80, "port": 443', 1)
    return text


@pytest.mark.parametrize("seed", range(80))
def test_random_registries_read_as_their_yaml(seed):
    r = random.Random(seed)
    text = _text(r, _registry(r, r.choice([1, 5, 40]), mistakes=seed % 2 == 1))
    for fleet, allow_private in ((None, True), (FLEET, False), (None, None)):
        as_yaml = read_checks(text, "checks.json", fleet, allow_private)
        as_json = read_checks_json(lambda t=text: t.encode(), "checks.json", fleet, allow_private)
        assert as_json == as_yaml
        if as_yaml[0] is not None:
            assert as_json[0].version == as_yaml[0].version  # type: ignore[union-attr]
            assert [type(getattr(c, f)) for c in as_json[0].checks for f in ("interval", "port")] \
                == [type(getattr(c, f)) for c in as_yaml[0].checks for f in ("interval", "port")]


def test_a_valid_registry_takes_no_yaml_pass(monkeypatch):
    from healthplane.proto.config import checks_json

    r = random.Random(7)
    entries = _registry(r, 300, mistakes=False)
    text = json.dumps({"checks": entries, "x-notes": {"k:1": "v:2"}})
    expected = read_checks(text, "checks.json", None, True)
    assert expected[1] == []
    monkeypatch.setattr(checks_json, "read_checks", None)   # no YAML pass may run
    assert read_checks_json(lambda: text.encode(), "checks.json", None, True) == expected


def _no_yaml_pass(monkeypatch, text: str):
    from healthplane.proto.config import checks_json

    expected = read_checks(text, "checks.json", None, True)
    assert expected[1] == []
    monkeypatch.setattr(checks_json, "read_checks", None)   # no YAML pass may run
    got = read_checks_json(lambda: text.encode(), "checks.json", None, True)
    assert got == expected
    assert got[0].version == expected[0].version  # type: ignore[union-attr]
    return got[0]


def test_numbers_of_two_types_that_read_alike_take_the_json_path(monkeypatch):
    entries = [{"id": f"c{i}", "type": "tcp", "host": "192.0.2.1", "port": 80,
                "interval": [10, 10.0, 2.5, 30][i % 4], "timeout": [1, 1.0, 2][i % 3]}
               for i in range(200)]
    registry = _no_yaml_pass(monkeypatch, json.dumps({"checks": entries}))
    assert {type(c.interval) for c in registry.checks} == {float}
    assert [c.interval for c in registry.checks[:4]] == [10.0, 10.0, 2.5, 30.0]


def test_a_field_one_entry_uses_after_the_common_ones_is_read(monkeypatch):
    # Fields are looked at until every key of the text is found; a rare
    # field on the last entry alone must still be one of them.
    entries = [{"id": f"c{i}", "type": "http", "host": "192.0.2.1", "port": 80}
               for i in range(100)]
    entries[-1].update(method="HEAD", ip_family="ipv4", min_votes=2,
                       headers={"X-A": "b:c"}, expected_status=[200, 204])
    registry = _no_yaml_pass(monkeypatch, json.dumps({"checks": entries}))
    last = registry.checks[-1]
    assert (last.method, last.ip_family, last.min_votes) == ("HEAD", "ipv4", 2)
    assert registry.checks[0].method == "GET"


@pytest.mark.parametrize("port", ["80.0", "true"])
def test_a_number_of_another_type_among_ports_is_refused_as_yaml_does(port):
    entries = ", ".join(f'{{"id": "c{i}", "type": "tcp", "host": "192.0.2.1", "port": 80}}'
                        for i in range(5))
    text = f'{{"checks": [{entries}, {{"id": "odd", "type": "tcp", "host": "192.0.2.1", ' \
           f'"port": {port}}}]}}'
    as_yaml = read_checks(text, "checks.json", None, True)
    assert as_yaml[0] is None and as_yaml[1]
    assert read_checks_json(lambda: text.encode(), "checks.json", None, True) == as_yaml
