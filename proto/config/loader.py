"""Load and validate checks.yaml, fleet.yaml and zone.yaml.

The public API every component calls::

    registry, fleet, zone = load_config("checks.yaml", "fleet.yaml", "zone.yaml")
    registry = load_checks("checks.yaml", fleet)
    fleet = load_fleet("fleet.yaml")
    zone = load_zone("zone.yaml", registry)

and ``parse_checks`` / ``parse_fleet`` / ``parse_zone`` for text already in
memory. Every function raises :class:`ConfigError` whose ``errors`` hold one
line per problem, ``FILE:LINE: FIELD.PATH: what is wrong``, with FILE the
path as the caller gave it and list indices counted from 0 (``checks[0]`` is
the first check, whose index in snapshots is also 0). All problems in a file
are reported, not only the first.

Rules that need two files:

* a check's ``regions`` must be regions of the fleet;
* literal target addresses in loopback, private, link-local, multicast or
  unspecified ranges, and the name ``localhost``, are refused unless the
  fleet sets ``allow_private_targets: true``. Without a fleet the setting has
  its default, false, so such checks are refused; pass
  ``allow_private_targets=True`` to load them alone;
* a zone record's ``check`` must be an id of the registry.

Without the other file the rule that needs it is skipped (except the
private-target default above).

Choices the contract leaves open, made strict where a mistake is likely:

* a field of another check type is an error (``search`` on tcp, ``host`` on
  calculated); ``hostname`` applies to http, https and grpc (its authority),
  ``verify_tls`` to https, ``grpc_service`` to grpc;
* YAML types are taken as written: ``port: "80"`` is a string and
  ``interval: true`` a boolean, and both are errors;
* a calculated check needs at least one child; ``healthy_threshold: 0``
  means always healthy, and a threshold above the number of children is an
  error (such a check could never be healthy);
* ``regions: []`` is an error (omit the field to mean every region);
* fleet: ``tick`` and ``report_interval`` are 0.05..60 s and ``stale_after``
  0.1..600 s, at least twice ``report_interval`` and at least ``tick`` (see
  fleet.stale_after_problem); ``canaries: []`` turns canaries off;
  canaries and aggregators are the operator's own addresses and are not
  subject to the private-target rule;
* zone: names are absolute with or without the final dot and kept lower
  case with it; ``policy`` defaults to ``simple``; a multivalue record may
  list more than the 8 values one answer carries;
* YAML anchors, aliases and merge keys (``<<: *defaults``) work; top-level
  keys starting with ``x-`` are ignored, as a place to keep anchors.

A registry file whose name ends in ``.json`` is decoded as JSON (which is
YAML, so it means the same), several times faster than YAML is composed;
see checks_json. Every file is read through healthplane.runtime.files:
regular files only, never blocking, at most 256 MiB.

The pieces: yamlload (read, compose), yamlcompose (nesting bound, streaming), yamlnodes (Errors,
Fields, messages), scalars (typed getters), checks / check_fields /
check_rules, checks_json / checks_json_decode / check_columns (the registry as
JSON, read column by column), fleet,
zone, names (id and host syntax), version (registry identity).
"""

from __future__ import annotations

from pathlib import Path

from healthplane.proto.config import names
from healthplane.proto.config.checks import read_checks
from healthplane.proto.config.checks_json import read_checks_json
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.fleet import parse_fleet_root
from healthplane.proto.config.model import Fleet, Registry, Zone
from healthplane.proto.config.yamlload import compose, decode_text, read_bytes, read_text
from healthplane.proto.config.yamlnodes import Errors
from healthplane.proto.config.zone import parse_zone_root

PathLike = str | Path

__all__ = [
    "ConfigError", "load_checks", "load_fleet", "load_zone", "load_config",
    "parse_checks", "parse_fleet", "parse_zone",
]


def _private_policy(fleet: Fleet | None, override: bool | None) -> bool:
    if override is not None:
        return override
    return fleet.allow_private_targets if fleet is not None else False


def is_json(path: PathLike) -> bool:
    """A registry file named *.json is read by the JSON decoder (see checks_json)."""
    return str(path).lower().endswith(".json")


def _checks_file(path: PathLike, fleet: Fleet | None,
                 allow_private: bool | None) -> tuple[Registry | None, list[str]]:
    """Read and validate a registry file, YAML or JSON by its name."""
    try:
        if is_json(path):
            # The reader calls this again only for the exact pass after a
            # problem, so the bytes are not kept while the checks are built.
            return read_checks_json(lambda: read_bytes(path)[1], str(path), fleet,
                                    allow_private)
        source, data = read_bytes(path)
        return read_checks(decode_text(data, source), source, fleet, allow_private)
    except ConfigError as exc:
        return None, exc.errors
    finally:
        names.forget()


def _fleet(text: str, source: str) -> tuple[Fleet | None, list[str]]:
    try:
        root = compose(text, source)
    except ConfigError as exc:
        return None, exc.errors
    errors = Errors(source)
    fleet = parse_fleet_root(root, errors)
    return fleet, errors.lines()


def _zone(text: str, source: str, registry: Registry | None) -> tuple[Zone | None, list[str]]:
    try:
        root = compose(text, source)
    except ConfigError as exc:
        return None, exc.errors
    errors = Errors(source)
    zone = parse_zone_root(root, errors, registry)
    return zone, errors.lines()


def _raise_if(errors: list[str]) -> None:
    if errors:
        raise ConfigError(errors)


def parse_checks(text: str, source: str = "checks.yaml", fleet: Fleet | None = None, *,
                 allow_private_targets: bool | None = None) -> Registry:
    """Validate checks.yaml text; see the module docstring for the fleet rules."""
    registry, errors = read_checks(text, source, fleet,
                                   _private_policy(fleet, allow_private_targets))
    _raise_if(errors)
    assert registry is not None
    return registry


def parse_fleet(text: str, source: str = "fleet.yaml") -> Fleet:
    """Validate fleet.yaml text."""
    fleet, errors = _fleet(text, source)
    _raise_if(errors)
    assert fleet is not None
    return fleet


def parse_zone(text: str, source: str = "zone.yaml", registry: Registry | None = None) -> Zone:
    """Validate zone.yaml text; with a registry, record checks must exist in it."""
    zone, errors = _zone(text, source, registry)
    _raise_if(errors)
    assert zone is not None
    return zone


def load_checks(path: PathLike, fleet: Fleet | None = None, *,
                allow_private_targets: bool | None = None) -> Registry:
    """Load checks.yaml. allow_private_targets overrides the fleet's setting."""
    registry, errors = _checks_file(path, fleet, _private_policy(fleet, allow_private_targets))
    _raise_if(errors)
    assert registry is not None
    return registry


def load_fleet(path: PathLike) -> Fleet:
    """Load fleet.yaml; canaries default to the aggregators."""
    source, text = read_text(path)
    return parse_fleet(text, source)


def load_zone(path: PathLike, registry: Registry | None = None) -> Zone:
    """Load zone.yaml; with a registry, every record's check must be in it."""
    source, text = read_text(path)
    return parse_zone(text, source, registry)


def _read(path: PathLike, errors: list[str]) -> tuple[str, str] | None:
    try:
        return read_text(path)
    except ConfigError as exc:
        errors.extend(exc.errors)
        return None


def load_config(checks_path: PathLike, fleet_path: PathLike | None = None,
                zone_path: PathLike | None = None
                ) -> tuple[Registry, Fleet | None, Zone | None]:
    """Load the files given and apply the rules between them.

    Reports the problems of every file in one ConfigError, checks first,
    then fleet, then zone. When one file is broken the others are still
    checked, skipping only the rules that need the broken one.
    """
    fleet_errors: list[str] = []
    fleet: Fleet | None = None
    fleet_ok = True
    if fleet_path is not None:
        read = _read(fleet_path, fleet_errors)
        if read is not None:
            fleet, more = _fleet(read[1], read[0])
            fleet_errors.extend(more)
        fleet_ok = fleet is not None

    policy = _private_policy(fleet, None) if fleet_ok else None
    registry, checks_errors = _checks_file(checks_path, fleet, policy)

    zone_errors: list[str] = []
    zone: Zone | None = None
    if zone_path is not None:
        read = _read(zone_path, zone_errors)
        if read is not None:
            zone, more = _zone(read[1], read[0], registry)
            zone_errors.extend(more)

    _raise_if(checks_errors + fleet_errors + zone_errors)
    assert registry is not None
    return registry, fleet, zone
