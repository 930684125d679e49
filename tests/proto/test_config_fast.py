"""The fast checks.yaml path gives exactly what the exact (node) path gives.

checks_fast reads plainly written files without composing YAML nodes and
gives up on anything else. Whatever it returns must be what the exact path
returns: the same checks (lines included), the same version; and whenever
the exact path reports a problem, the fast path must have given up.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from healthplane.proto.config.checks import KNOWN_FIELDS, read_checks
from healthplane.proto.config.checks_fast import read_checks_fast
from healthplane.proto.config.loader import load_fleet
from healthplane.proto.config.model import Fleet, Registry
from healthplane.proto.config.yamlload import SafeNodeLoader
from healthplane.proto.config.yamlnodes import STR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.nodes import ScalarNode

TESTDATA = Path(__file__).parent / "testdata"
EXAMPLES = Path(__file__).parents[2] / "deploy" / "examples"
FILES = sorted(TESTDATA.rglob("*.yaml")) + sorted(EXAMPLES.glob("*.yaml"))
FLEET = load_fleet(TESTDATA / "good" / "fleet.yaml")
POLICIES = [(None, True), (None, False), (None, None), (FLEET, False)]


def _both(text: str, fleet: Fleet | None, allow_private: bool | None,
          source: str = "f.yaml") -> tuple[Registry | None, list[str]]:
    """Read text both ways and check they agree; returns the exact result."""
    exact, errors = read_checks(text, source, fleet, allow_private, fast=False)
    fast = read_checks_fast(text, source, fleet, allow_private)
    if errors:
        assert fast is None, errors
        assert exact is None
    elif fast is not None:
        assert exact is not None
        assert fast == exact
        assert fast.version == exact.version and fast.source == exact.source
        assert [c.line for c in fast.checks] == [c.line for c in exact.checks]
    # And the public entry point gives the exact path's answer either way.
    assert read_checks(text, source, fleet, allow_private) == (exact, errors)
    return exact, errors


def test_known_fields_and_the_top_key_are_plain_strings():
    # The fast path takes a known key as written for a string key.
    loader = SafeNodeLoader("")
    for key in KNOWN_FIELDS | {"checks"}:
        assert loader.resolve(ScalarNode, key, (True, False)) == STR


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize(("fleet", "allow_private"), POLICIES)
def test_every_test_file_reads_the_same_both_ways(path, fleet, allow_private):
    _both(path.read_text(), fleet, allow_private, path.name)


def test_the_plain_example_registry_takes_the_fast_path():
    text = (EXAMPLES / "checks.yaml").read_text()
    assert read_checks_fast(text, "checks.yaml", None, True) is not None


# -- generated registries ------------------------------------------------------

_HOSTS = ["192.0.2.10", "198.51.100.7", "api.example.com", "API.Example.com.", "2001:db8::1",
          '"2001:db8::2"', "db-1.internal.example", "'svc.example.org'", "8.8.8.8"]
_STYLES = ["  - ", "- ", "    - ", "  -   "]


def _value(r: random.Random, key: str, ids: list[str]) -> str:
    choices = {
        "host": _HOSTS,
        "port": ["80", "443", "8080", "65535", "1", "0x50", '"80"'[1:-1]],
        "path": ["/", "/health", '"/health?full=1"', "'/a/b.c'", "/x-y_z~"],
        "hostname": ["www.example.com", "'a.example.org'", "EXAMPLE.net"],
        "search": ["ok", '"all good"', "'status: up'", "healthy and well"],
        "interval": ["10", "30", "2.5", "300", "1", "60.0", "1.0e+1"],
        "timeout": ["1", "0.5", "1.5", ".5"],
        "failure_threshold": ["1", "3", "10"],
        "inverted": ["true", "false", "yes", "off", "True"],
        "disabled": ["false", "no", "on"],
        "verify_tls": ["true", "false"],
        "grpc_service": ["svc.Health", "''", '"grpc.health.v1"'],
        "healthy_threshold": ["0", "1"],
    }
    if key in ("regions",):
        picked = r.sample(["us-east", "eu-west", "ap-south"], r.randint(1, 3))
        return "[" + ", ".join(picked) + "]" if r.random() < 0.5 else picked  # type: ignore[return-value]
    if key == "children":
        picked = r.sample(ids, min(len(ids), r.randint(1, 3)))
        return "[" + ",".join(picked) + "]" if r.random() < 0.5 else picked  # type: ignore[return-value]
    return r.choice(choices[key])


_OPTIONAL = {
    "http": ["path", "hostname", "search", "interval", "timeout", "failure_threshold",
             "inverted", "disabled"],
    "https": ["path", "hostname", "search", "verify_tls", "interval", "failure_threshold"],
    "tcp": ["interval", "failure_threshold", "regions", "disabled"],
    "grpc": ["hostname", "grpc_service", "interval", "timeout", "regions"],
}


def generate(count: int, seed: int) -> str:
    """A valid registry in the plain style with varied fields and layout."""
    r = random.Random(seed)
    dash = r.choice(_STYLES)
    indent = " " * len(dash)
    out = ["# generated\n", "---\n" if r.random() < 0.5 else "", "checks:   # the registry\n"]
    ids: list[str] = []
    for i in range(count):
        kind = r.choice(["http", "https", "tcp", "grpc", "calculated"] if ids else ["tcp"])
        check_id = f"c{i}-{kind}" if r.random() < 0.9 else f"'q.{i}'"
        fields: list[tuple[str, object]] = [("type", kind)]
        if kind == "calculated":
            fields.append(("children", _value(r, "children", ids[-50:])))
            if r.random() < 0.3:
                fields.append(("healthy_threshold", "1"))
        else:
            fields += [("host", _value(r, "host", ids)), ("port", _value(r, "port", ids))]
            for key in r.sample(_OPTIONAL[kind], r.randint(0, 3)):
                fields.append((key, _value(r, key, ids)))
            keys = [k for k, _ in fields]
            if "timeout" in keys and "interval" in keys:
                fields = [(k, v) for k, v in fields if k != "timeout"]
        r.shuffle(fields)
        fields.insert(r.randint(0, len(fields)), ("id", check_id))
        ids.append(check_id.strip("'"))
        for n, (key, value) in enumerate(fields):
            lead = dash if n == 0 else indent
            if isinstance(value, list):
                sub = indent + r.choice(["", "  "])
                out.append(f"{lead}{key}:\n" + "".join(f"{sub}- {v}\n" for v in value))
            else:
                comment = "  # note" if r.random() < 0.05 else ""
                out.append(f"{lead}{key}: {value}{comment}\n")
        if r.random() < 0.05:
            out.append("\n    # a comment line\n")
    return "".join(out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_generated_registry_reads_the_same_both_ways(seed):
    text = generate(3_000 if seed > 1 else 10_000, seed)
    exact, errors = _both(text, None, True)
    assert not errors
    assert exact is not None and exact.check_count >= 3_000
    assert read_checks_fast(text, "f.yaml", None, True) is not None


def test_windows_line_endings_read_the_same_both_ways():
    text = generate(500, 4).replace("\n", "\r\n")
    exact, errors = _both(text, None, True)
    assert not errors and exact is not None
    assert read_checks_fast(text, "f.yaml", None, True) == exact
    # A lone CR is a line break too, but not one the fast path reads.
    lone = text.replace("\r\n", "\r", 1)
    assert read_checks_fast(lone, "f.yaml", None, True) is None
    _both(lone, None, True)


PLAIN_LAYOUTS = {
    "items at column 0": "checks:\n- id: a\n  type: tcp\n  host: h.example\n  port: 1\n",
    "wide dash": "checks:\n    -   id: a\n        type: tcp\n        host: h.example\n"
                 "        port: 1\n",
    "document start": "# c\n\n---   # doc\nchecks:\n  - id: a\n    type: tcp\n"
                      "    host: h.example\n    port: 1",
    "comments and blanks everywhere": "checks: # x\n\n  # c\n  - id: a # c\n# c\n   \n"
                                      "    type: tcp\n        # deep\n    host: h.example\n"
                                      "    port: 1   \n    regions:\n\n      # c\n"
                                      "      - eu   # c\n\n      - us\n    disabled: on\n",
    "indentless list": "checks:\n  - id: a\n    type: calculated\n    children:\n"
                       "    - b\n    healthy_threshold: 1\n  - id: b\n    type: tcp\n"
                       "    host: h.example\n    port: 1\n",
    "spaces in values": "checks:\n  - id: a\n    type: http\n    host: h.example\n"
                        "    port: 1\n    search: all  good here   # not this\n",
    "quotes": "checks:\n  - id: 'a'\n    type: \"http\"\n    host: '::1'\n    port: 1\n"
              "    search: \"a # b, c: d\"\n    regions: [ \"eu\" ,'us' ]\n",
    "values that resolve": "checks:\n  - id: a\n    type: tcp\n    host: 2001:db8::1\n"
                           "    port: 0x50\n    interval: 1:30\n    timeout: 1_0.5\n"
                           "    inverted: Yes\n",
}


@pytest.mark.parametrize("text", PLAIN_LAYOUTS.values(), ids=list(PLAIN_LAYOUTS))
def test_plain_layouts_take_the_fast_path_with_the_same_result(text):
    exact, errors = _both(text, None, True)
    assert not errors, errors
    assert read_checks_fast(text, "f.yaml", None, True) == exact


# -- mutated registries ----------------------------------------------------------

TOKENS = [
    " ", "  ", "\n", "\n  ", "- ", ":", ": ", "#", " #", "'", '"', "[", "]", ",", "{", "}",
    "&a ", "*a", "!!str ", "<<: *a\n", "~", "null", "true", "yes", "0x1", "1e400", ".nan",
    "-", "---\n", "...\n", "\t", "\r", "\r\n", "é", "\\", "%", "@", "`", "|", ">", "?", "=",
    "id: x\n", "    port: 80\n", "    regions: [a]\n", "  - id: y\n    type: tcp\n",
]
_BASE = generate(12, 7)
_edit = st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.sampled_from(TOKENS))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_edit, min_size=1, max_size=3), st.sampled_from(POLICIES))
def test_mutated_registries_read_the_same_both_ways(edits, policy):
    text = _BASE
    for pos, cut, token in edits:
        pos %= len(text) + 1
        text = text[:pos] + token + text[pos + cut:]
    _both(text, *policy)


# Values and line edits that mostly stay in the plain style, so the fast
# path reads the result and the comparison has teeth.
SCALARS = [
    "a:b", "a::b", "2001:db8::1", "a b", "a  b", "a #b", "a#b", "x=y", "=", "~", "null", "Null",
    "yes", "No", "on", "OFF", "y", "0o17", "017", "1_000", "1:30", "190:20:30", ".inf", "-.inf",
    ".NaN", "+1", "-1", "0x1F", "0b101", "1.5e+3", "2001-01-01", "2001-12-14t21:59:43.10-05:00",
    '"x"', "'y'", "''", '""', '"a: b"', "'#'", "<<", "a.", ".a", "/", "/a b", "%x", "@x",
    "a,b", "[a]", "[a, b]", "[]", "[ a ,b ]", "[a,]", "['a', \"b\"]", "[1, 2]", "[yes]",
    "80", "8080", "65536", "0", "10", "300", "301", "0.5", "4", "5", "3.0", "api.example.com",
    "LOCALHOST", "127.0.0.1", "10.1.2.3", "::1", "tcp", "calculated", "grpc", "https",
]
KEYS = sorted(KNOWN_FIELDS) + ["checks", "x-a", "Id", "yes", "on"]


def _line_edit(lines: list[str], op: int, at: int, pick: int) -> None:
    at %= len(lines)
    line = lines[at]
    key, sep, _ = line.partition(": ")
    if op == 0 and sep:                          # another value
        lines[at] = f"{key}: {SCALARS[pick % len(SCALARS)]}"
    elif op == 1 and sep:                        # another key
        indent = key[:len(key) - len(key.lstrip(" -"))]
        lines[at] = f"{indent}{KEYS[pick % len(KEYS)]}: {line[len(key) + 2:]}"
    elif op == 2:                                # indent one more or one less
        lines[at] = " " + line if pick % 2 else line[1:]
    elif op == 3:
        del lines[at]
    elif op == 4:
        lines.insert(at, line)
    elif op == 5:
        lines.insert(at, lines.pop((at + pick) % len(lines)))


_line_edits = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10_000), st.integers(0, 1000)),
                       min_size=1, max_size=3)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_line_edits, st.sampled_from(POLICIES))
def test_line_edits_read_the_same_both_ways(edits, policy):
    lines = _BASE.splitlines()
    for op, at, pick in edits:
        if lines:
            _line_edit(lines, op, at, pick)
    _both("\n".join(lines) + "\n", *policy)


@pytest.mark.parametrize("value", SCALARS)
@pytest.mark.parametrize("key", ["id", "type", "host", "port", "path", "search", "interval",
                                 "regions", "inverted"])
def test_every_odd_value_reads_the_same_both_ways(key, value):
    fields = {"id": "a", "type": "http", "host": "api.example.com", "port": "80", key: value}
    text = "checks:\n" + "".join(f"{'  - ' if n == 0 else '    '}{k}: {v}\n"
                                 for n, (k, v) in enumerate(fields.items()))
    for fleet, allow_private in POLICIES:
        _both(text, fleet, allow_private)
