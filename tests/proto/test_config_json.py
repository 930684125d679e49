"""checks.json: the registry as JSON reads exactly as the same text read as YAML.

The JSON reader decodes with the standard library and hands any file with a
problem to the YAML node path for its messages. So for every text, its
answer must be the YAML path's answer on the same text: the same checks and
version when valid, the same error lines otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from healthplane.proto.config.checks import read_checks
from healthplane.proto.config.checks_json import read_checks_json
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.loader import load_checks, load_config, load_fleet
from healthplane.proto.config.model import Fleet, Registry

TESTDATA = Path(__file__).parent / "testdata"
EXAMPLES = Path(__file__).parents[2] / "deploy" / "examples"
FLEET = load_fleet(TESTDATA / "good" / "fleet.yaml")
POLICIES = [(None, True), (None, False), (None, None), (FLEET, False)]


def _as_json(path: Path) -> str | None:
    """The file's data written as JSON, or None when it is not plain data."""
    try:
        data = yaml.safe_load(path.read_text())
        return json.dumps(data, indent=2)
    except (yaml.YAMLError, TypeError, ValueError, RecursionError):
        return None


JSON_CASES = [pytest.param(text, id=f"{p.parent.name}/{p.stem}")
              for p in sorted(TESTDATA.rglob("*.yaml")) + sorted(EXAMPLES.glob("*.yaml"))
              if (text := _as_json(p)) is not None]


def _both(text: str, fleet: Fleet | None, allow_private: bool | None,
          source: str = "checks.json") -> tuple[Registry | None, list[str]]:
    """Read text as JSON and as YAML and check they agree; returns the answer."""
    as_yaml = read_checks(text, source, fleet, allow_private)
    as_json = read_checks_json(lambda: text.encode(), source, fleet, allow_private)
    assert as_json == as_yaml
    if as_json[0] is not None:
        assert as_json[0].version == as_yaml[0].version  # type: ignore[union-attr]
    return as_json


def test_there_are_enough_cases():
    assert len(JSON_CASES) >= 40


@pytest.mark.parametrize("text", JSON_CASES)
@pytest.mark.parametrize(("fleet", "allow_private"), POLICIES)
def test_every_test_file_as_json_reads_as_its_yaml(text, fleet, allow_private):
    _both(text, fleet, allow_private)


def test_the_good_registry_as_a_json_file(tmp_path):
    path = tmp_path / "checks.json"
    path.write_text(_as_json(TESTDATA / "good" / "checks.yaml") or "")
    from_json = load_checks(path, FLEET)
    from_yaml = load_checks(TESTDATA / "good" / "checks.yaml", FLEET)
    assert from_json.checks == from_yaml.checks and from_json.version == from_yaml.version
    assert from_json.source == str(path)
    registry, fleet, _ = load_config(path, TESTDATA / "good" / "fleet.yaml")
    assert registry == from_json and fleet == FLEET


BAD_PORT = """\
{"checks": [
  {"id": "web-1", "type": "tcp", "host": "192.0.2.1", "port": 80},
  {"id": "web-2",
   "type": "tcp",
   "host": "192.0.2.2",
   "port": 99999}
]}
"""


def test_a_bad_field_names_its_line(tmp_path):
    path = tmp_path / "checks.json"
    path.write_text(BAD_PORT)
    with pytest.raises(ConfigError) as info:
        load_checks(path, FLEET)
    assert info.value.errors == [f"{path}:6: checks[1].port: must be 1..65535 (got 99999)"]


@pytest.mark.parametrize(("text", "line"), [
    ('{"checks": [\n  {"id": "a", "type": "tcp"\n  {"id": "b"}\n]}\n', 3),
    ('{"checks": [\n  {"id": "a",}\n]}\n', 2),
    ('{"checks": [\n', 2),
])
def test_a_syntax_error_is_one_line_with_its_line(tmp_path, text, line):
    path = tmp_path / "checks.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_checks(path, FLEET)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith(f"{path}:{line}: JSON syntax error: ")
    assert "\n" not in info.value.errors[0]


@pytest.mark.parametrize(("text", "message"), [
    # JSON keeps the last of two keys; the rule is that a key is written once.
    ('{"checks": [{"id": "a", "type": "tcp", "host": "192.0.2.1", "port": 80,\n'
     ' "port": 81}]}', "checks.json:2: checks[0].port: duplicate key (first at line 1)"),
    # 1e3 is a number to JSON and text to YAML 1.1: the YAML reading wins.
    ('{"checks": [{"id": "a", "type": "tcp", "host": "192.0.2.1", "port": 80,\n'
     ' "interval": 1e3}]}', "checks.json:2: checks[0].interval: must be a number, "
                            "got string '1e3'"),
    ('{"checks": [{"id": "a", "type": "tcp", "host": "192.0.2.1", "port": true}]}',
     "checks.json:1: checks[0].port: must be an integer, got boolean true"),
    ('{"checks": [{"id": "a", "type": "tcp", "host": "192.0.2.1", "port": 80},\n'
     '            {"id": "a", "type": "tcp", "host": "192.0.2.1", "port": 81}]}',
     "checks.json:2: checks[1].id: duplicate id 'a' (first at line 1)"),
    ('{"checks": [], "extra": 1}', "checks.json:1: extra: unknown field"),
])
def test_what_json_and_yaml_could_read_differently_reads_as_yaml(text, message):
    registry, errors = _both(text, None, True)
    assert registry is None and errors == [message]


def test_a_registry_as_json_loads_with_every_rule(tmp_path):
    entries = [{"id": f"c{i}", "type": "http", "host": f"h{i % 3}.example", "port": 80,
                "interval": 10, "timeout": 2.5, "regions": ["us-east"]} for i in range(50)]
    entries.append({"id": "all", "type": "calculated", "children": ["c1", "c2"]})
    text = json.dumps({"checks": entries})
    registry, errors = _both(text, FLEET, False)
    assert errors == [] and registry is not None and registry.check_count == 51
    assert registry.checks[0].timeout == 2.5 and registry.checks[50].children == ("c1", "c2")
    # The same list with one unknown region: reported with its line by the YAML pass.
    entries[7]["regions"] = ["mars"]
    registry, errors = _both(json.dumps({"checks": entries}, indent=1), FLEET, False)
    assert registry is None and len(errors) == 1
    assert "checks[7].regions[0]: unknown region 'mars'" in errors[0]


def test_a_json_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "checks.json"
    path.write_bytes(b'{"checks": [{"id": "\xff"}]}')
    with pytest.raises(ConfigError) as info:
        load_checks(path)
    assert info.value.errors == [f"{path}: not UTF-8 text (byte 0xff at offset 20)"]


def test_mixed_value_types_and_absent_fields_take_the_json_path(monkeypatch):
    # interval as 10 and 2.5 (two types), absent on the calculated check: a
    # valid file must be read without the YAML pass.
    from healthplane.proto.config import checks_json

    entries = [{"id": "a", "type": "tcp", "host": "192.0.2.1", "port": 80, "interval": 10},
               {"id": "b", "type": "tcp", "host": "192.0.2.1", "port": 80, "interval": 2.5},
               {"id": "c", "type": "tcp", "host": "192.0.2.1", "port": 80},
               {"id": "all", "type": "calculated", "children": ["a", "b"]}]
    monkeypatch.setattr(checks_json, "read_checks", None)   # no YAML pass may run
    registry, errors = read_checks_json(lambda: json.dumps({"checks": entries}).encode(),
                                        "checks.json", None, True)
    assert errors == [] and registry is not None
    assert [(c.interval, c.timeout) for c in registry.checks] == [
        (10.0, 4.0), (2.5, 2.5), (30.0, 4.0), (30.0, 4.0)]


def test_a_registry_hashed_while_it_is_read_has_the_version_of_its_checks():
    from healthplane.proto.config.version import registry_version

    entries = [{"id": f"c{i}", "type": "tcp", "host": "192.0.2.1", "port": 1 + i % 999}
               for i in range(5000)]                 # several slices, the last one partial
    registry, errors = read_checks_json(lambda: json.dumps({"checks": entries}).encode(),
                                        "checks.json", None, True)
    assert errors == [] and registry is not None
    assert registry.version == registry_version(registry.checks)
    assert registry.version == read_checks(json.dumps({"checks": entries}), "checks.json",
                                           None, True)[0].version  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [
    # An object under an x- key that looks like a check is not one.
    '{"x-template": {"id": "t", "type": "tcp", "host": "192.0.2.1", "port": 80},\n'
    ' "checks": [{"id": "a", "type": "tcp", "host": "192.0.2.1", "port": 80}]}',
    '{"checks": [{"id": "a", "type": "tcp", "host": "192.0.2.1", "port": 80}],\n'
    ' "x-template": {"id": "t", "type": "tcp", "host": "192.0.2.1", "port": 80}}',
    # A check with neither id nor type, and a check nested in a field.
    '{"checks": [{"host": "192.0.2.1", "port": 80}]}',
    '{"checks": [{"id": "a", "type": "tcp", "port": 80,\n'
    '             "host": {"id": "b", "type": "tcp", "host": "192.0.2.1", "port": 80}}]}',
])
def test_objects_that_are_not_entries_of_the_list(text):
    _both(text, None, True)
