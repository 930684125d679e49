"""Config loaders: a table of bad files with exact messages, good files, cross-file rules.

Every file under testdata/bad/{checks,fleet,zone}/ ends with one
``# expect: MESSAGE`` comment per error it must produce, in order (comments
at the end keep every line number above them unchanged). Checks are read
against testdata/good/fleet.yaml, which does not allow private targets, and
zones against the registry in testdata/good/checks.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.loader import (
    load_checks,
    load_config,
    load_fleet,
    load_zone,
    parse_checks,
    parse_fleet,
    parse_zone,
)
from healthplane.proto.config.model import Check, NameServer, RecordValue, Soa, Transfer, Tsig

TESTDATA = Path(__file__).parent / "testdata"
GOOD = TESTDATA / "good"
BAD = TESTDATA / "bad"
EXAMPLES = Path(__file__).parents[2] / "deploy" / "examples"
EXPECT = "# expect: "


def _bad_cases() -> list:
    cases = []
    for kind in ("checks", "fleet", "zone"):
        for path in sorted((BAD / kind).glob("*.yaml")):
            cases.append(pytest.param(kind, path, id=f"{kind}/{path.stem}"))
    return cases


BAD_CASES = _bad_cases()


def test_the_bad_table_is_big_enough():
    assert len(BAD_CASES) >= 30
    for kind in ("checks", "fleet", "zone"):
        assert sum(1 for case in BAD_CASES if case.values[0] == kind) >= 8


@pytest.fixture(scope="module")
def fleet():
    return load_fleet(GOOD / "fleet.yaml")


@pytest.fixture(scope="module")
def registry(fleet):
    return load_checks(GOOD / "checks.yaml", fleet)


@pytest.mark.parametrize(("kind", "path"), BAD_CASES)
def test_bad_file_gives_exactly_the_expected_errors(kind, path, fleet, registry):
    text = path.read_text()
    expected = [line[len(EXPECT):] for line in text.splitlines() if line.startswith(EXPECT)]
    assert expected, f"{path} has no '{EXPECT}' lines"
    with pytest.raises(ConfigError) as info:
        if kind == "checks":
            parse_checks(text, path.name, fleet)
        elif kind == "fleet":
            parse_fleet(text, path.name)
        else:
            parse_zone(text, path.name, registry)
    assert info.value.errors == expected
    assert str(info.value) == "\n".join(expected)


# -- good files ---------------------------------------------------------------

def test_good_files_with_defaults_applied(fleet, registry):
    assert registry.ids == ("api-use1", "api-euw1", "db.primary_1", "rpc", "api-any", "all-ok")
    assert registry.index_of()["rpc"] == 3
    assert registry.source == str(GOOD / "checks.yaml")
    api, euw, db, rpc, any_, all_ok = registry.checks
    assert api == Check(id="api-use1", type="http", host="192.0.2.10", port=8080,
                        path="/health", hostname="api.example.com", search="ok",
                        interval=10.0, timeout=4.0, failure_threshold=3,
                        regions=("us-east", "eu-west"))
    assert api.line == 4
    assert (euw.interval, euw.timeout, euw.verify_tls, euw.path) == (2.5, 2.5, True, "/")
    assert (db.host, db.timeout, db.interval, db.failure_threshold) == ("2001:db8::10", 0.8,
                                                                        30.0, 3)
    assert (rpc.grpc_service, rpc.regions, rpc.timeout) == ("app.v1.Api", ("ap-south",), 4.0)
    assert any_.children == ("api-use1", "api-euw1", "all-ok") and any_.inverted
    assert (any_.host, any_.port) == (None, None)
    assert all_ok.healthy_threshold == 0

    assert fleet.regions == {"us-east": ("use1-a", "use1-b"), "eu-west": ("euw1-a",),
                             "ap-south": ("aps1-a",)}
    assert fleet.checker_ids == ("use1-a", "use1-b", "euw1-a", "aps1-a")
    assert fleet.canaries == fleet.aggregators          # default
    assert (fleet.report_interval, fleet.tick, fleet.stale_after) == (0.5, 1.0, 2.5)
    assert (fleet.healthy_fraction, fleet.unknown_as) == (0.0, "healthy")
    assert fleet.checkers_per_region == 2 and not fleet.allow_private_targets


def test_good_zone_is_normalised(registry):
    zone = load_zone(GOOD / "zone.yaml", registry)
    assert (zone.zone, zone.ttl) == ("example.test.", 60)
    failover, apex, www, img, alias = zone.records
    assert (failover.policy, failover.ttl) == ("failover", 10)
    assert failover.primary == RecordValue("192.0.2.10", "api-use1")
    assert failover.secondary == RecordValue("192.0.2.20", "api-euw1")
    assert (apex.name, apex.policy, apex.ttl) == ("example.test.", "simple", None)
    assert apex.values == (RecordValue("2001:db8::1"),)   # canonical spelling
    assert len(www.values) == 9                            # more than 8 answers is allowed
    assert [v.weight for v in img.values] == [3, 0]
    assert [v.weight for v in www.values] == [1] * 9
    assert (alias.type, alias.values) == ("CNAME", (RecordValue("www.example.test."),))
    assert zone.soa == Soa(mname="ns1.example.test.", rname="hostmaster.example.test.",
                           refresh=600, minimum=20)
    assert zone.nameservers == (NameServer("ns1.example.test.", "192.0.2.53"),
                                NameServer("ns2.example.net."))
    assert zone.transfer == Transfer(
        allow=("127.0.0.1/32", "2001:db8::/64"), notify=("127.0.0.1:5400", "[2001:db8::53]:53"),
        tsig=Tsig("xfr-key.", "hmac-sha256", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="))


def test_fleet_defaults():
    fleet = parse_fleet('regions: {r: [c]}\naggregators: ["192.0.2.1:7000"]\n')
    assert (fleet.checkers_per_region, fleet.report_interval, fleet.tick, fleet.stale_after,
            fleet.healthy_fraction, fleet.unknown_as, fleet.allow_private_targets) == (
        1, 1.0, 1.0, 3.0, 0.18, "last_known", False)
    assert fleet.canaries == ("192.0.2.1:7000",)
    explicit = parse_fleet('regions: {r: [c]}\naggregators: ["192.0.2.1:7000"]\ncanaries: []\n')
    assert explicit.canaries == ()


def test_the_examples_load_together():
    registry, fleet, zone = load_config(EXAMPLES / "checks.yaml", EXAMPLES / "fleet.yaml",
                                        EXAMPLES / "zone.yaml")
    assert registry.check_count == 11 and fleet is not None and zone is not None
    assert fleet.allow_private_targets
    checks = {c.id: c for c in registry.checks}
    assert checks["maint-1"].disabled and checks["maint-1"].timeout == 4.0
    assert checks["web-any"].children == ("web-1", "web-2", "web-3", "web-4")
    assert {r.name for r in zone.records} >= {"api.example.test.", "www.example.test."}


def test_load_config_without_optional_files():
    registry, fleet, zone = load_config(GOOD / "checks.yaml")
    assert registry.check_count == 6 and fleet is None and zone is None


# -- rules between files ------------------------------------------------------

LOOPBACK_CHECK = "checks:\n  - {id: a, type: tcp, host: 127.0.0.1, port: 80}\n"


def test_private_targets_need_the_fleet_to_allow_them(fleet):
    allowing = parse_fleet('regions: {r: [c]}\naggregators: ["127.0.0.1:7000"]\n'
                           "allow_private_targets: true\n")
    assert parse_checks(LOOPBACK_CHECK, fleet=allowing).checks[0].host == "127.0.0.1"
    with pytest.raises(ConfigError) as info:
        parse_checks(LOOPBACK_CHECK, fleet=fleet)
    assert info.value.errors == ["checks.yaml:2: checks[0].host: 127.0.0.1 is a loopback "
                                 "address; refused unless the fleet sets "
                                 "allow_private_targets: true"]


def test_without_a_fleet_private_targets_are_refused_unless_overridden():
    with pytest.raises(ConfigError) as info:
        parse_checks(LOOPBACK_CHECK)
    assert info.value.errors[0].endswith("(no fleet given, so it is false)")
    assert parse_checks(LOOPBACK_CHECK, allow_private_targets=True).check_count == 1


def test_without_a_fleet_regions_are_not_checked():
    text = "checks:\n  - {id: a, type: tcp, host: 192.0.2.1, port: 80, regions: [mars]}\n"
    assert parse_checks(text).checks[0].regions == ("mars",)


def test_without_a_registry_zone_checks_are_not_checked():
    text = "zone: x.test\nrecords:\n  - {name: x.test, type: A, values: [{value: 192.0.2.1, " \
           "check: nowhere}]}\n"
    assert parse_zone(text).records[0].values[0].check == "nowhere"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_config_reports_every_file_and_skips_rules_of_a_broken_one(tmp_path):
    checks = _write(tmp_path, "checks.yaml", LOOPBACK_CHECK + "  - {id: b, type: tcp}\n")
    fleet = _write(tmp_path, "fleet.yaml", "regions: {r: [c]}\n")
    zone = _write(tmp_path, "zone.yaml", "zone: x.test\nrecords: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(checks, fleet, zone)
    # The broken fleet cannot say whether private targets are allowed, so the
    # loopback host is not reported; the registry is broken, so record checks
    # are not looked up.
    assert info.value.errors == [
        f"{checks}:3: checks[1].host: required for type tcp",
        f"{checks}:3: checks[1].port: required for type tcp",
        f"{fleet}:1: aggregators: required",
        f"{zone}:2: records: must be a list, got integer 3",
    ]


def test_load_config_applies_the_zone_to_the_registry(tmp_path):
    zone = _write(tmp_path, "zone.yaml", "zone: x.test\nrecords:\n  - name: x.test\n"
                  "    type: A\n    values: [{value: 192.0.2.1, check: nope}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(GOOD / "checks.yaml", GOOD / "fleet.yaml", zone)
    assert info.value.errors == [f"{zone}:5: records[0].values[0].check: unknown check 'nope'"]


# -- files that are not config ------------------------------------------------

def test_messages_name_the_path_as_given(tmp_path):
    path = _write(tmp_path, "c.yaml", "checks:\n  - {id: a, type: tcp, host: 192.0.2.1}\n")
    with pytest.raises(ConfigError) as info:
        load_checks(str(path))
    assert info.value.errors == [f"{path}:2: checks[0].port: required for type tcp"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read: no such file or directory"),
    (b"", "file is empty"),
    (b"\n# only a comment\n\n", "file is empty"),
    (b"checks: \xff\xfe\n", "not UTF-8 text (byte 0xff at offset 8)"),
    (b"checks: [\n", "YAML syntax error"),
    (b"\x00\x01binary", "YAML syntax error"),
    (b"just text", "top level must be a mapping, got string 'just text'"),
])
def test_unreadable_files_give_one_line(tmp_path, content, message):
    path = tmp_path / "checks.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_checks(path)
    assert len(info.value.errors) == 1
    line = info.value.errors[0]
    assert line.startswith(f"{path}") and message in line and "\n" not in line


def test_an_endless_file_is_refused():
    with pytest.raises(ConfigError) as info:
        load_checks("/dev/zero")
    assert info.value.errors == ["/dev/zero: cannot read: is a character device, "
                                 "not a regular file"]


@pytest.mark.parametrize("name", ["checks.yaml", "checks.json"])
def test_a_huge_file_is_refused_before_it_is_read(tmp_path, name):
    path = tmp_path / name
    with path.open("wb") as f:
        f.truncate(1536 << 20)       # sparse: 1.5 GB that cost no disk
    with pytest.raises(ConfigError) as info:
        load_checks(path)
    assert info.value.errors == [f"{path}: larger than 256 MiB; is it the right file?"]


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_fleet(tmp_path)
    assert info.value.errors == [f"{tmp_path}: cannot read: is a directory"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_one_line(tmp_path):
    path = _write(tmp_path, "zone.yaml", "zone: x.test\nrecords: []\n")
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_zone(path)
    assert info.value.errors == [f"{path}: cannot read: permission denied"]


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_bytes(b"\xef\xbb\xbfregions: {r: [c]}\naggregators: ['192.0.2.1:1']\n")
    assert load_fleet(path).checker_ids == ("c",)


def test_every_error_is_reported_not_only_the_first():
    text = "checks:\n" + "".join(
        f"  - {{id: c{i}, type: tcp, host: 192.0.2.1, port: 0}}\n" for i in range(50))
    with pytest.raises(ConfigError) as info:
        parse_checks(text)
    assert len(info.value.errors) == 50
    assert info.value.errors[49] == "checks.yaml:51: checks[49].port: must be 1..65535 (got 0)"


def test_an_empty_registry_is_valid():
    registry = parse_checks("checks: []\n")
    assert registry.check_count == 0 and len(registry.version) == 16


def test_search_must_fit_the_body_window():
    base = "checks:\n  - {id: a, type: http, host: 192.0.2.1, port: 80, search: %s}\n"
    assert parse_checks(base % ("x" * 5120)).checks[0].search == "x" * 5120
    with pytest.raises(ConfigError) as info:
        parse_checks(base % ("é" * 2561))  # 5,122 bytes in UTF-8
    assert info.value.errors == [
        "checks.yaml:2: checks[0].search: must be 1..5120 bytes (got 5122)"]


def test_hostname_must_be_a_name():
    text = "checks:\n  - {id: a, type: grpc, host: 192.0.2.1, port: 80, hostname: 'a b'}\n"
    with pytest.raises(ConfigError) as info:
        parse_checks(text)
    assert info.value.errors == [
        "checks.yaml:2: checks[0].hostname: must be a host name or an IP address (got 'a b')"]


def test_messages_stay_on_one_line_whatever_the_input():
    text = ('checks:\n  - {id: "a\\nb", type: "tcp\\r\\n", host: "h\\nx", port: 1,'
            ' "k\\ney": 1}\n')
    with pytest.raises(ConfigError) as info:
        parse_checks(text)
    assert len(info.value.errors) == 4
    assert all("\n" not in e and "\r" not in e for e in info.value.errors)


def test_timeout_defaults_to_the_interval_when_shorter_than_4s():
    registry = parse_checks("checks:\n  - {id: a, type: tcp, host: 192.0.2.1, port: 1, "
                            "interval: 1.5}\n")
    assert (registry.checks[0].interval, registry.checks[0].timeout) == (1.5, 1.5)


def test_deep_nesting_is_an_error_not_a_crash(tmp_path):
    # libyaml's own composer recurses in C and kills the process on this; which
    # layer refuses it (ours, or a newer PyYAML's own depth limit) and in what
    # words is theirs to choose: what matters is one line naming file and line.
    path = _write(tmp_path, "checks.yaml", "checks: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_checks(path)
    [error] = info.value.errors
    assert error.startswith(f"{path}:1: YAML syntax error: ")
    assert "\n" not in error and "nesting" in error


def test_lists_are_bounded():
    many = ", ".join(f"c{i}" for i in range(257))
    text = f"checks:\n  - {{id: any, type: calculated, children: [{many}]}}\n"
    with pytest.raises(ConfigError) as info:
        parse_checks(text)
    assert info.value.errors == [
        "checks.yaml:2: checks[0].children: must list at most 256 (got 257)"]


def test_nested_merges_cost_linear_time():
    lines = ["x-a0: &a0 {type: tcp}"]
    lines += [f"x-a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}]}}" for i in range(1, 60)]
    lines.append("checks:\n  - {<<: *a59, id: x, host: 192.0.2.1, port: 1}")
    assert parse_checks("\n".join(lines) + "\n").checks[0].type == "tcp"  # not 2**59 merges


def test_checks_read_while_streaming_or_from_a_merged_list_agree():
    plain = (GOOD / "checks.yaml").read_text()
    streamed = parse_checks(plain, fleet=load_fleet(GOOD / "fleet.yaml"))
    # A list reached through a top-level merge is not streamed; same result.
    merged = plain.replace("checks:\n", "x-all: &all\n  checks:\n", 1)
    merged = "\n".join(("  " + line if line.startswith("  ") else line)
                       for line in merged.splitlines()) + "\n<<: *all\n"
    via_merge = parse_checks(merged, fleet=load_fleet(GOOD / "fleet.yaml"))
    assert via_merge.checks == streamed.checks and via_merge.version == streamed.version


def test_a_second_checks_key_is_a_duplicate_key():
    text = ("checks:\n  - {id: a, type: tcp, host: 192.0.2.1, port: 1}\n"
            "checks:\n  - {id: b, type: tcp, host: 192.0.2.1, port: 0}\n")
    with pytest.raises(ConfigError) as info:
        parse_checks(text)
    assert info.value.errors == ["checks.yaml:3: checks: duplicate key (first at line 1)"]


@pytest.mark.parametrize("text", [
    "a:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(80)) + "  " * 81 + "v\n",
    "a: " + "[" * 100 + "]" * 100 + "\n",
    "a: &x [1]\nb: " + "[" * 70 + "*x" + "]" * 70 + "\n",
])
def test_nesting_past_the_limit_is_one_error_whichever_composer_reads_it(text):
    # A whole document is composed by libyaml where it bounds nesting itself;
    # a streamed registry by the Python composer. Both stop at MAX_DEPTH.
    from healthplane.proto.config.yamlload import compose, compose_stream

    with pytest.raises(ConfigError) as whole:
        compose(text, "f.yaml")
    with pytest.raises(ConfigError) as streamed:
        compose_stream(text, "f.yaml", "checks", lambda *_: None)
    assert whole.value.errors == streamed.value.errors
    [error] = whole.value.errors
    assert "nesting deeper than 64 levels" in error
