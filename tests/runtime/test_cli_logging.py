"""Every subcommand takes --log-level and --log-format, and logs real fields."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from healthplane.aggregator import cli as aggregator_cli
from healthplane.aggregator import query_cli
from healthplane.aggregator.dns import cli as dns_cli
from healthplane.aggregator.dns import pdns_cli
from healthplane.checker import cli as checker_cli
from healthplane.deploy import demo
from healthplane.proto import validate_cli

from healthplane import certs

PARSERS = {
    "checker": (checker_cli.build_parser, ["--checks", "c", "--fleet", "f", "--id", "a"]),
    "aggregator": (aggregator_cli._parser, ["--checks", "c", "--fleet", "f", "--listen", ":0"]),
    "dns": (dns_cli._parser, ["--zone", "z", "--aggregator", "127.0.0.1:1"]),
    "validate": (validate_cli._parser, ["checks.yaml"]),
    "query": (query_cli._parser, ["--aggregator", "127.0.0.1:1"]),
    "demo": (demo._parser, []),
    "certs": (certs._parser, ["--out", "d"]),
    "pdns-backend": (pdns_cli._parser, ["--zone", "z", "--aggregator", "127.0.0.1:1",
                                        "--socket", "s"]),
}
RELOADING = ["checker", "aggregator", "dns", "pdns-backend"]


@pytest.mark.parametrize("command", sorted(PARSERS))
@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_every_subcommand_takes_the_logging_flags(command: str, level: str, fmt: str) -> None:
    build, required = PARSERS[command]
    args = build().parse_args([*required, "--log-level", level, "--log-format", fmt])
    assert (args.log_level, args.log_format) == (level, fmt)


@pytest.mark.parametrize("command", RELOADING)
@pytest.mark.parametrize("flag", ["--reload-period", "--reload-interval"])
def test_every_reloading_component_takes_both_reload_flag_names(command: str, flag: str) -> None:
    build, required = PARSERS[command]
    assert build().parse_args([*required, flag, "7.5"]).reload_period == 7.5


@pytest.mark.parametrize("command", RELOADING)
@pytest.mark.parametrize("value", ["0.001", "-1", "nan", "inf", "soon"])
def test_a_reload_period_that_would_spin_or_never_come_is_refused(
        command: str, value: str, capsys) -> None:
    build, required = PARSERS[command]
    with pytest.raises(SystemExit) as exit_:
        build().parse_args([*required, "--reload-period", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--reload-period" in err[-1] and value in err[-1]


@pytest.mark.parametrize("command", RELOADING)
def test_a_reload_period_of_zero_means_sighup_only(command: str) -> None:
    build, required = PARSERS[command]
    assert build().parse_args([*required, "--reload-period", "0"]).reload_period == 0


def test_the_checkers_verbose_flag_is_kept_as_an_alias() -> None:
    build, required = PARSERS["checker"]
    assert build().parse_args([*required, "-vv"]).verbose == 2


def test_validate_with_json_logs_still_prints_its_summary(tmp_path: Path, capsys) -> None:
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - {id: a, type: tcp, host: 192.0.2.1, port: 80}\n")
    assert validate_cli.main([str(tmp_path / "checks.yaml"), "--log-format", "json",
                              "--log-level", "debug"]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 check")


def test_an_aggregator_logs_json_lines_with_fields(tmp_path: Path) -> None:
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - {id: web-1, type: tcp, host: 127.0.0.1, port: 1, interval: 5}\n")
    (tmp_path / "fleet.yaml").write_text(
        "regions:\n  r: [a]\naggregators: ['127.0.0.1:7000']\nallow_private_targets: true\n")
    argv = [sys.executable, "-m", "healthplane", "aggregator",
            "--checks", str(tmp_path / "checks.yaml"), "--fleet", str(tmp_path / "fleet.yaml"),
            "--listen", "127.0.0.1:0", "--reload-interval", "0", "--log-format", "json"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        for _ in range(50):                  # bounded: the first lines are start-up logs
            line = proc.stderr.readline()
            if not line:
                break
            doc = json.loads(line)
            if doc["msg"].startswith("listening on"):
                break
        else:
            raise AssertionError("no 'listening on' line")
        assert doc["level"] == "info" and doc["logger"] == "healthplane.aggregator"
        assert doc["address"].startswith("127.0.0.1:") and doc["checks"] == 1
        assert doc["msg"] == f"listening on {doc['address']}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
