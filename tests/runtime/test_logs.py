"""Logging: real fields, both formats, and no way for a value to forge a line."""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Iterator

import pytest

from healthplane.runtime import logs

HOSTILE = [
    'x"\nts=2000-01-01T00:00:00.000Z level=error msg="forged"',
    "a\rb", "tab\there", "nul\x00byte", "esc\x1b[31mred", "line\u2028sep", "back\\slash",
    "k=v", "", " ", "bell\x07", "del\x7f", "next\x85line",
]


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buf = io.StringIO()
    logs.setup("debug", "logfmt", buf)
    yield buf, logging.getLogger("healthplane.test")
    root.handlers[:], root.level = saved
    logging.captureWarnings(False)


def parse_logfmt(line: str) -> dict[str, str]:
    """A strict logfmt reader: every token is key=bare or key="escaped"."""
    out: dict[str, str] = {}
    i, n = 0, len(line)
    escapes = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while i < n:
        eq = line.index("=", i)
        key = line[i:eq]
        assert key and " " not in key and '"' not in key, line
        i = eq + 1
        if i < n and line[i] == '"':
            i += 1
            chars: list[str] = []
            while line[i] != '"':
                if line[i] == "\\":
                    c = line[i + 1]
                    if c in escapes:
                        chars.append(escapes[c])
                        i += 2
                    else:
                        width = {"x": 2, "u": 4, "U": 8}[c]
                        chars.append(chr(int(line[i + 2:i + 2 + width], 16)))
                        i += 2 + width
                else:
                    chars.append(line[i])
                    i += 1
            value = "".join(chars)
            i += 1
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            value = line[i:end]
            i = end
        assert key not in out, f"duplicate field {key}: {line}"
        out[key] = value
        assert i == n or line[i] == " ", line
        i += 1
    return out


def test_logfmt_carries_fields_as_fields(captured) -> None:
    buf, log = captured
    log.info("state changed", extra={"check": "web-1", "state": "unhealthy", "n": 3})
    line = buf.getvalue().rstrip("\n")
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["level"] == "info" and fields["msg"] == "state changed"
    assert fields["logger"] == "healthplane.test"
    assert (fields["check"], fields["state"], fields["n"]) == ("web-1", "unhealthy", "3")
    assert line.startswith("ts=") and fields["ts"].endswith("Z")
    assert line.index(" level=") < line.index(" msg=") < line.index(" check=")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_cannot_forge_a_line_or_a_field(captured, value: str) -> None:
    buf, log = captured
    log.warning("peer said %s", value, extra={"check": value, "level_of": "x"})
    out = buf.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")
    line = out[:-1]
    assert all(c.isprintable() for c in line), repr(line)
    fields = parse_logfmt(line)
    assert fields["check"] == value and fields["msg"] == f"peer said {value}"
    assert fields["level"] == "warning"


def test_hostile_field_names_and_reserved_names(captured) -> None:
    buf, log = captured
    log.info("m", extra={"bad key\n=x": 1, "ts": "fake", "level": "fake"})
    fields = parse_logfmt(buf.getvalue().rstrip("\n"))
    assert fields["bad_key__x"] == "1"
    assert fields["ts_"] == "fake" and fields["level_"] == "fake"
    assert fields["level"] == "info"


def test_an_exception_stays_on_one_line(captured) -> None:
    buf, log = captured
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed", extra={"check": "c1"})
    out = buf.getvalue()
    assert out.count("\n") == 1
    fields = parse_logfmt(out.rstrip("\n"))
    assert fields["level"] == "error" and "ValueError: bad\nthing" in fields["exc"]


@pytest.mark.parametrize("value", HOSTILE)
def test_json_lines_with_the_same_fields(value: str) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buf = io.StringIO()
    try:
        logs.setup("info", "json", buf)
        logging.getLogger("healthplane.test").info("got %s", value, extra={"check": value})
        logging.getLogger("healthplane.test").debug("hidden")
    finally:
        root.handlers[:], root.level = saved
    out = buf.getvalue()
    assert out.count("\n") == 1 and out.isascii()
    doc = json.loads(out)
    assert doc["level"] == "info" and doc["msg"] == f"got {value}" and doc["check"] == value
    assert doc["logger"] == "healthplane.test" and doc["ts"].endswith("Z")


def test_grpc_and_asyncio_loggers_use_the_same_format(captured) -> None:
    buf, _ = captured
    logging.getLogger("grpc._cython.cygrpc").warning("from grpc")
    logging.getLogger("asyncio").error("from asyncio")
    lines = [parse_logfmt(line) for line in buf.getvalue().splitlines()]
    assert [f["logger"] for f in lines] == ["grpc._cython.cygrpc", "asyncio"]


def test_bound_fields_are_added_to_every_record(captured) -> None:
    buf, log = captured
    bound = logs.bind(log, checker="use1-a")
    bound.info("one", extra={"check": "c1"})
    bound.info("two")
    first, second = (parse_logfmt(x) for x in buf.getvalue().splitlines())
    assert (first["checker"], first["check"]) == ("use1-a", "c1")
    assert second["checker"] == "use1-a" and "check" not in second


def test_flags_levels_and_the_verbose_alias() -> None:
    p = argparse.ArgumentParser()
    logs.add_log_flags(p, default="warning", verbose_alias=True)
    assert logs.level_from_args(p.parse_args([])) == "warning"
    assert logs.level_from_args(p.parse_args(["-v"])) == "info"
    assert logs.level_from_args(p.parse_args(["-vv"])) == "debug"
    assert logs.level_from_args(p.parse_args(["-vv", "--log-level", "error"])) == "error"
    assert p.parse_args(["--log-format", "JSON"]).log_format == "json"
    with pytest.raises(SystemExit):
        p.parse_args(["--log-level", "loud"])
    with pytest.raises(ValueError):
        logs.setup("loud")
