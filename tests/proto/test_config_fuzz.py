"""Whatever bytes a config file holds, loading it ends in a value or a ConfigError.

Mutates the good test files with YAML's structural characters, explicit
tags, odd scalars and raw bytes, and checks that no other exception escapes
and that every message is one line that names the file.
"""

from __future__ import annotations

from pathlib import Path

from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.loader import parse_checks, parse_fleet, parse_zone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GOOD = Path(__file__).parent / "testdata" / "good"
TEXTS = {name: (GOOD / f"{name}.yaml").read_text() for name in ("checks", "fleet", "zone")}

TOKENS = [
    ":", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: *a\n", "!!int ", "!!float ",
    "!!bool ", "!!str ", "!!binary ", "!!python/object:os.system ", "!!timestamp ", "!x ",
    "'", '"', "\n", "\n  ", "  ", "#", "|", ">", "?", "~", "null", "true", "1e400", ".nan",
    "-1", "0x", "99999999999999999999999", "é", "\x00", "\t", "\r", "\\", "%", "@", "`",
    "---\n", "...\n", "2024-01-01", "1:30", "\u2028",
]

_edit = st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.sampled_from(TOKENS))


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    for pos, cut, token in edits:
        pos %= len(text) + 1
        text = text[:pos] + token + text[pos + cut:]
    return text


def _load(name: str, text: str) -> None:
    try:
        if name == "checks":
            parse_checks(text, "f.yaml")
        elif name == "fleet":
            parse_fleet(text, "f.yaml")
        else:
            parse_zone(text, "f.yaml")
    except ConfigError as exc:
        assert exc.errors
        for line in exc.errors:
            assert line.startswith("f.yaml")
            assert "\n" not in line and "\r" not in line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(TEXTS)), st.lists(_edit, min_size=1, max_size=4))
def test_mutated_files_never_escape_as_other_exceptions(name, edits):
    _load(name, _mutate(TEXTS[name], edits))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(TEXTS)), st.text(max_size=200))
def test_arbitrary_text_never_escapes(name, text):
    _load(name, text)
