"""Registry identity: the version follows meaning, not spelling."""

from __future__ import annotations

import hashlib
import random

import pytest
import yaml
from healthplane.proto.config.loader import parse_checks
from healthplane.proto.config.model import Check
from healthplane.proto.config.version import VERSION_HEX_CHARS, canonical_json, make_registry
from hypothesis import given, settings
from hypothesis import strategies as st

BASE = """\
checks:
  - id: web-1
    type: http
    host: 192.0.2.10
    port: 8080
    path: /health
    interval: 10
  - id: db
    type: tcp
    host: 192.0.2.20
    port: 5432
    regions: [us-east, eu-west]
  - id: any
    type: calculated
    children: [web-1, db]
"""

# The same three checks: keys reordered, flow style, comments, blank lines,
# quotes, 10 written as 10.0, every default written out, set-like lists
# in another order.
SAME_MEANING = """\
# a comment that changes nothing
checks:

  - {port: 8080, "host": "192.0.2.10", type: http, id: web-1, path: "/health",
     interval: 10.0, timeout: 4, failure_threshold: 3, inverted: false,
     disabled: no}   # trailing comment
  - id:   db
    type: tcp
    port: 5432
    host: 192.0.2.20
    interval: 30
    regions:
      - eu-west
      - us-east
    timeout: 4.0
  - type: calculated
    id: any
    children: [db, web-1]
    healthy_threshold: 1
"""

CHANGES = {
    "reordered checks": ("  - id: web-1", None),
    "port": ("port: 8080", "port: 8081"),
    "path": ("path: /health", "path: /healthz"),
    "interval": ("interval: 10", "interval: 11"),
    "timeout": ("interval: 10", "interval: 10\n    timeout: 3"),
    "disabled": ("interval: 10", "interval: 10\n    disabled: true"),
    "inverted": ("interval: 10", "interval: 10\n    inverted: true"),
    "region": ("[us-east, eu-west]", "[us-east]"),
    "id": ("db", "db2"),  # every occurrence: the id and the child
    "child set": ("children: [web-1, db]", "children: [web-1]"),
    "threshold": ("children: [web-1, db]", "children: [web-1, db]\n    healthy_threshold: 2"),
    "type": ("type: http", "type: https"),
    "host": ("host: 192.0.2.20", "host: 192.0.2.21"),
}


def version(text: str) -> str:
    return parse_checks(text).version


def test_version_is_16_hex_chars_and_repeatable():
    v = version(BASE)
    assert len(v) == 16 and int(v, 16) >= 0
    assert version(BASE) == v


def test_spelling_does_not_change_the_version():
    assert version(SAME_MEANING) == version(BASE)
    upper = BASE.replace("host: 192.0.2.20", "host: DB.Example.COM")
    assert version(upper) == version(upper.replace("DB.Example.COM", "db.example.com"))
    v6 = BASE.replace("host: 192.0.2.20", 'host: "2001:DB8:0::1"')
    assert version(v6) == version(v6.replace("2001:DB8:0::1", "2001:db8::1"))


def test_every_change_of_meaning_changes_the_version():
    base = version(BASE)
    seen = {base}
    for name, (old, new) in CHANGES.items():
        assert old in BASE, name
        if new is None:  # move the first check to the end
            head, rest = BASE.split("  - id: db", 1)
            first = head.split("checks:\n", 1)[1]
            text = "checks:\n  - id: db" + rest + first
            assert parse_checks(text).ids == ("db", "any", "web-1")
        else:
            text = BASE.replace(old, new, -1 if name == "id" else 1)
        v = version(text)
        assert v != base, name
        seen.add(v)
    assert len(seen) == len(CHANGES) + 1


def test_make_registry_agrees_with_the_loader():
    loaded = parse_checks(BASE)
    built = make_registry(loaded.checks)
    assert built.version == loaded.version and built.checks == loaded.checks


_ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
_probe = st.fixed_dictionaries(
    {"type": st.sampled_from(["http", "https", "tcp", "grpc"]),
     "host": st.sampled_from(["192.0.2.1", "198.51.100.7", "api.example.com", "2001:db8::5"]),
     "port": st.integers(1, 65535)},
    optional={"interval": st.integers(4, 300), "failure_threshold": st.integers(1, 10),
              "inverted": st.booleans(), "disabled": st.booleans()},
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_ids, _probe), min_size=1, max_size=8,
                unique_by=lambda t: t[0]),
       st.randoms(use_true_random=False))
def test_key_order_and_style_never_change_the_version(items, rnd: random.Random):
    checks = [{"id": check_id, **fields} for check_id, fields in items]
    plain = yaml.safe_dump({"checks": checks}, sort_keys=False)
    shuffled = []
    for check in checks:
        keys = list(check)
        rnd.shuffle(keys)
        shuffled.append({k: check[k] for k in keys})
    other = yaml.safe_dump({"checks": shuffled}, sort_keys=False,
                           default_flow_style=rnd.choice([True, False]), indent=4)
    assert version(other) == version(plain)


def test_anchors_and_merge_keys_mean_what_they_expand_to():
    dry = """\
x-probe: &probe
  type: tcp
  host: 192.0.2.20
  port: 5432
x-regions: &both [us-east, eu-west]
checks:
  - id: web-1
    type: http
    host: 192.0.2.10
    port: 8080
    path: /health
    interval: 10
  - <<: *probe
    id: db
    regions: *both
  - id: any
    type: calculated
    children: [web-1, db]
"""
    assert version(dry) == version(BASE)
    overridden = dry.replace("    id: db\n", "    id: db\n    port: 5433\n")
    assert parse_checks(overridden).checks[1].port == 5433


class _Seconds(float):
    """A float subclass, as a caller building checks by hand might pass."""


def test_the_version_is_the_hash_of_the_plain_canonical_document():
    # registry_version builds the canonical JSON its own faster way, in
    # slices; it must hash exactly the bytes canonical_json spells out.
    rnd = random.Random(3)
    checks = [
        Check(id=f"c{i}", type="tcp", host=f"h{i % 7}.example", port=1 + i % 9,
              interval=rnd.choice([10, 10.0, _Seconds(2.5)]), timeout=rnd.choice([1, 0.5]),
              regions=rnd.choice([(), ("b", "a"), ("a",), ["z"], ["y", "x"]]),
              search=rnd.choice([None, "é ok", '"quoted"\n']), disabled=rnd.random() < 0.5)
        for i in range(5000)
    ]
    for count in (0, 1, 2047, 2048, 2049, 5000):
        blob = canonical_json(checks[:count]).encode("utf-8")
        expected = hashlib.sha256(blob).hexdigest()[:VERSION_HEX_CHARS]
        assert make_registry(checks[:count]).version == expected


@pytest.mark.parametrize("chunk", [None, 5])
def test_checks_that_set_extension_fields_hash_as_the_plain_document(chunk, monkeypatch):
    # Runs of checks setting the same extension fields are spelled a run at a
    # time, interleaved with checks that set none or others, in chunks of
    # checks that need not end where a run does.
    from healthplane.proto.config import version

    if chunk is not None:
        monkeypatch.setattr(version, "_CHUNK", chunk)
    rnd = random.Random(5)
    extensions = [{}, {}, {}, {"method": "HEAD"}, {"min_votes": 2},
                  {"method": "POST", "expected_status": ((200, 200), (204, 204))},
                  {"headers": (("X-A", "b"),), "success_threshold": 1}]
    checks = [
        Check(id=f"c{i}", type="http", host="h.example", port=80,
              interval=rnd.choice([10.0, 30.0]), **rnd.choice(extensions))  # type: ignore[arg-type]
        for i in range(6000)
    ]
    checks[2500:4600] = [Check(id=f"m{i}", type="http", host="h.example", port=80,
                               method="HEAD") for i in range(2100)]
    for count in (0, 1, 3, 2049, 6000):
        blob = canonical_json(checks[:count]).encode("utf-8")
        expected = hashlib.sha256(blob).hexdigest()[:VERSION_HEX_CHARS]
        assert make_registry(checks[:count]).version == expected


def test_success_threshold_keeps_old_versions_and_counts_when_it_differs():
    def version(extra: str) -> str:
        return parse_checks("checks:\n  - {id: a, type: tcp, host: 192.0.2.1, port: 80, "
                            f"failure_threshold: 2{extra}}}\n").version
    plain = version("")
    # Written out at its default (failure_threshold) it means nothing new.
    assert version(", success_threshold: 2") == plain
    assert version(", success_threshold: 3") != plain
