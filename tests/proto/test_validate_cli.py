"""``healthplane validate`` as an operator runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from healthplane.proto import validate_cli

ROOT = Path(__file__).parents[2]
TESTDATA = Path(__file__).parent / "testdata"
EXAMPLES = ROOT / "deploy" / "examples"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healthplane", "validate", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_the_examples_are_valid():
    done = run(EXAMPLES / "checks.yaml", "--fleet", EXAMPLES / "fleet.yaml",
               "--zone", EXAMPLES / "zone.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ok: 11 checks (http 7, tcp 2, grpc 1, calculated 1), "
                               "6 checkers in 3 regions, 5 records in example.test.; "
                               "registry version ")
    assert len(lines[0].rsplit(" ", 1)[1]) == 16


def test_checks_alone():
    done = run(TESTDATA / "good" / "checks.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "ok: 6 checks (http 1, https 1, tcp 1, grpc 1, calculated 2); registry version ")


def test_a_broken_file_lists_every_error_with_its_line(tmp_path):
    bad = tmp_path / "checks.yaml"
    bad.write_text("checks:\n"
                   "  - id: a\n    type: http\n    host: 192.0.2.1\n    port: 80\n"
                   "    interval: 10\n    timeout: 12\n"
                   "  - id: a\n    type: tcp\n    host: 192.0.2.2\n    port: 70000\n")
    done = run(bad)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{bad}:7: checks[0].timeout: must be <= interval (10)",
        f"{bad}:8: checks[1].id: duplicate id 'a' (first at line 2)",
        f"{bad}:11: checks[1].port: must be 1..65535 (got 70000)",
    ]


def test_errors_of_every_file_are_reported(tmp_path):
    done = run(TESTDATA / "bad" / "checks" / "port_range.yaml",
               "--fleet", TESTDATA / "bad" / "fleet" / "timing.yaml",
               "--zone", TESTDATA / "bad" / "zone" / "weights.yaml")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert sum("port_range.yaml:" in line for line in lines) == 4
    assert sum("timing.yaml:" in line for line in lines) == 2
    assert sum("weights.yaml:" in line for line in lines) == 4


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read: no such file or directory"),
    (b"", "file is empty"),
    (b"checks: [\n  - id: a\n", "YAML syntax error"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
    (b"<html><body>hello</body></html>\n", "top level must be a mapping"),
])
def test_bad_input_is_one_line_and_never_a_traceback(tmp_path, content, message):
    path = tmp_path / "checks.yaml"
    if content is not None:
        path.write_bytes(content)
    done = run(path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(str(path)) and message in done.stderr


def test_a_missing_fleet_file_is_reported_with_the_checks(tmp_path):
    done = run(TESTDATA / "good" / "checks.yaml", "--fleet", tmp_path / "nope.yaml")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{tmp_path / 'nope.yaml'}: cannot read: no such file or directory"]


def test_usage_errors_exit_2():
    done = run()
    assert done.returncode == 2 and "usage: healthplane validate" in done.stderr
    assert run("--help").returncode == 0


def test_main_in_process(capsys):
    assert validate_cli.main([str(TESTDATA / "good" / "checks.yaml"), "--fleet",
                              str(TESTDATA / "good" / "fleet.yaml"), "--zone",
                              str(TESTDATA / "good" / "zone.yaml")]) == 0
    out = capsys.readouterr().out
    assert ", 4 checkers in 3 regions, 5 records in example.test.;" in out
    assert validate_cli.main([str(TESTDATA / "bad" / "zone" / "weights.yaml")]) == 1


def test_a_flood_of_errors_is_cut_short(tmp_path, capsys):
    path = tmp_path / "checks.yaml"
    path.write_text("checks:\n" + "".join(
        f"  - {{id: c{i}, type: tcp, host: 192.0.2.1, port: 0}}\n" for i in range(30)))
    assert validate_cli.main([str(path), "--max-errors", "10"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 11
    assert lines[-1] == "... and 20 more errors (--max-errors 0 shows all)"
    assert validate_cli.main([str(path), "--max-errors", "0"]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 30


def test_a_json_registry_validates_to_the_same_version(tmp_path):
    import json

    import yaml

    as_json = tmp_path / "checks.json"
    as_json.write_text(json.dumps(yaml.safe_load((EXAMPLES / "checks.yaml").read_text())))
    from_yaml = run(EXAMPLES / "checks.yaml", "--fleet", EXAMPLES / "fleet.yaml")
    from_json = run(as_json, "--fleet", EXAMPLES / "fleet.yaml")
    assert from_json.returncode == 0, from_json.stderr
    assert from_json.stdout == from_yaml.stdout
    as_json.write_text(as_json.read_text().replace('"port": 18081', '"port": 0', 1))
    bad = run(as_json, "--fleet", EXAMPLES / "fleet.yaml")
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [f"{as_json}:1: checks[0].port: must be 1..65535 (got 0)"]


def test_a_check_that_can_never_reach_its_quorum_is_a_warning(tmp_path):
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks:\n"
                      "  - {id: a, type: tcp, host: 192.0.2.1, port: 80}\n"
                      "  - {id: b, type: tcp, host: 192.0.2.1, port: 80, regions: [us-east]}\n"
                      "  - {id: c, type: tcp, host: 192.0.2.1, port: 80, min_votes: 4}\n"
                      "  - {id: d, type: tcp, host: 192.0.2.1, port: 80, min_regions: 1,\n"
                      "     regions: [us-east]}\n")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("regions:\n  us-east: [use1-a, use1-b]\n  eu-west: [euw1-a]\n"
                     "  ap-south: [aps1-a]\naggregators: [\"192.0.2.9:7000\"]\n"
                     "min_votes: 2\nmin_regions: 2\n")
    done = run(checks, "--fleet", fleet)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 4 checks")
    assert done.stderr.splitlines() == [
        f"warning: {checks}:3: checks[1]: can never reach its quorum: min_votes 2 but at most "
        "1 checker(s) probe it; min_regions 2 but it is probed in 1 region(s) "
        "(unknown_as last_known decides it)",
        f"warning: {checks}:4: checks[2]: can never reach its quorum: min_votes 4 but at most "
        "3 checker(s) probe it (unknown_as last_known decides it)",
        f"warning: {checks}:5: checks[3]: can never reach its quorum: min_votes 2 but at most "
        "1 checker(s) probe it (unknown_as last_known decides it)",
    ]
