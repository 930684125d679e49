"""checks.yaml: the check registry, a tagged union on ``type``.

Each check type accepts its own set of fields; a field of another type is an
error ("does not apply to type tcp") rather than silently ignored, and a key
no type knows is "unknown field". Cross-check rules (duplicate ids, calculated
children that exist and form no cycle) run after every entry is read, and the
fleet rules (regions exist, private targets) run when a fleet is known.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from healthplane.proto.config import check_rules, probe_fields
from healthplane.proto.config.check_fields import READERS, Entry
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.model import CHECK_TYPES, Check, Fleet, Registry
from healthplane.proto.config.names import id_problem, is_id
from healthplane.proto.config.scalars import as_list, as_mapping, as_str
from healthplane.proto.config.version import registry_version
from healthplane.proto.config.yamlload import compose_stream
from healthplane.proto.config.yamlnodes import (
    Errors,
    Fields,
    MappingNode,
    Node,
    SequenceNode,
    fmt_num,
    line_of,
    quote,
)

_COMMON = frozenset({"id", "type", "inverted", "disabled"})
_PROBE = _COMMON | {"host", "port", "interval", "timeout", "failure_threshold", "regions",
                    "ip_family", "success_threshold", "min_votes", "min_regions"}
_HTTP = _PROBE | {"path", "hostname", "search", "method", "headers", "expected_status"}
FIELDS_BY_TYPE: dict[str, frozenset[str]] = {
    "http": _HTTP,
    "https": _HTTP | {"verify_tls"},
    "tcp": _PROBE | {"send", "expect"},
    "grpc": _PROBE | {"hostname", "grpc_service", "tls", "verify_tls"},
    "dns": _PROBE | {"query_name", "query_type", "expect_rcode"},
    "calculated": _COMMON | {"children", "healthy_threshold"},
}
# Required fields by type; a dns check's port defaults to 53.
_REQUIRED: dict[str, tuple[str, ...]] = {"dns": ("host",), "calculated": ("children",)}
KNOWN_FIELDS = frozenset().union(*FIELDS_BY_TYPE.values())
_TYPE_LIST = ", ".join(CHECK_TYPES)


class EntryReader:
    """Reads check entries one at a time while the file is being composed.

    Pass ``on_item`` as the hook of ``compose_stream(text, source, "checks",
    hook)``, then the reader to parse_checks_root.
    """

    def __init__(self, errors: Errors) -> None:
        self.errors = errors
        self.entries: list[Entry] = []
        self.streamed: SequenceNode | None = None

    def on_item(self, index: int, node: Node, shared: bool) -> None:
        # Only a node an alias can bring back is kept, to recognise it then.
        self.entries.append(_parse_entry(node, f"checks[{index}]", self.errors,
                                         node if shared else None))


def read_checks(text: str, source: str, fleet: Fleet | None,
                allow_private: bool | None) -> tuple[Registry | None, list[str]]:
    """Compose and read checks.yaml text: (registry or None, error lines).

    A YAML syntax error gives that one line; otherwise every problem found.
    """
    errors = Errors(source)
    reader = EntryReader(errors)
    with gc_paused():
        try:
            root, reader.streamed = compose_stream(text, source, "checks", reader.on_item)
        except ConfigError as exc:
            return None, exc.errors
        return parse_checks_root(root, errors, fleet, allow_private, reader), errors.lines()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a registry is read.

    Reading makes millions of short-lived objects and few cycles, and every
    full collection would rescan the checks already built: pausing saves a
    sixth of the YAML path's time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            # The registry is long-lived: put what was made straight into the
            # oldest generation (freeze, then unfreeze, moves lists, not
            # objects), rather than have the next young collection, and the
            # one after, walk a million fresh checks. Skipped where the
            # process froze objects of its own, which unfreeze would thaw.
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def parse_checks_root(root: MappingNode, errors: Errors, fleet: Fleet | None,
                      allow_private: bool | None,
                      reader: EntryReader | None = None) -> Registry | None:
    """Read a composed checks.yaml; None when errors were found.

    allow_private: True or False applies that policy to literal targets;
    None skips the private-target rule (used when the fleet that would
    decide it failed to load, so its absence is not reported twice).
    reader: entries already read while composing (see EntryReader).
    """
    top = Fields(root, "", errors)
    top.reject_unknown({"checks"}, extensions=True)
    checks_node = top.require("checks")
    if checks_node is None:
        return None
    items = as_list(checks_node, "checks", errors)
    if items is None:
        return None
    if reader is not None and reader.streamed is checks_node:
        entries = reader.entries
    else:
        entries = [_parse_entry(node, f"checks[{i}]", errors, node)
                   for i, node in enumerate(items)]
    check_rules.check_cross_entry(entries, errors, fleet, allow_private)
    if errors:
        return None
    checks = tuple(e.check for e in entries if e.check is not None)
    return Registry(checks=checks, version=registry_version(checks), source=errors.source)


def _parse_entry(node: Node, path: str, errors: Errors, source: object) -> Entry:
    entry = Entry(check=None, path=path, source=source)
    mapping = as_mapping(node, path, errors)
    if mapping is None:
        return entry
    f = Fields(mapping, path, errors)
    ok = True
    values: dict[str, object] = {}

    id_node = f.require("id")
    if id_node is not None:
        check_id = as_str(id_node, f.sub("id"), errors)
        if check_id is not None and not is_id(check_id):
            errors.add(id_node, f.sub("id"), id_problem(check_id))
            check_id = None
        if check_id is not None:
            entry.id = (check_id, line_of(id_node))
        values["id"] = check_id
    ok &= values.get("id") is not None

    kind: str | None = None
    type_node = f.require("type")
    if type_node is not None:
        kind = as_str(type_node, f.sub("type"), errors)
        if kind is not None and kind not in FIELDS_BY_TYPE:
            errors.add(type_node, f.sub("type"), f"must be one of {_TYPE_LIST} (got {quote(kind)})")
            kind = None
    ok &= kind is not None
    values["type"] = kind

    # A field of another type is reported once and not read any further.
    allowed = FIELDS_BY_TYPE[kind] if kind is not None else KNOWN_FIELDS
    for key in f.entries:
        if key not in KNOWN_FIELDS:
            errors.add(f.key_node(key), f.sub(key), "unknown field")
        elif key not in allowed:
            errors.add(f.key_node(key), f.sub(key), f"does not apply to type {kind}")
    present = {k: f.get(k) for k in f.entries if k in allowed and k not in ("id", "type")}

    required = _REQUIRED.get(kind, ("host", "port")) if kind else ()
    for key in required:
        if key not in present:
            errors.add(mapping, f.sub(key), f"required for type {kind}")
            ok = False

    for key, value_node in present.items():
        reader = READERS[key]
        value = reader(value_node, f.sub(key), errors, entry)
        if value is None:
            ok = False
        else:
            values[key] = value

    for key, problem in probe_fields.entry_problems(kind, values, present):
        errors.add(present.get(key, mapping), f.sub(key), problem)
        ok = False
    normalize_thresholds(values)
    ok &= _check_timing(values, present, f, errors)
    ok &= _check_threshold(values, present, f, errors)
    if ok:
        values.pop("type")
        entry.check = Check(type=kind, line=line_of(mapping), **values)  # type: ignore[arg-type]
    return entry


def _check_timing(values: dict, present: dict, f: Fields, errors: Errors) -> bool:
    problem = timing_problem(values, present)
    if problem is not None:
        errors.add(present["timeout"], f.sub("timeout"), problem)
        return False
    return True


def _check_threshold(values: dict, present: dict, f: Fields, errors: Errors) -> bool:
    problem = threshold_problem(values)
    if problem is not None:
        errors.add(present["healthy_threshold"], f.sub("healthy_threshold"), problem)
        return False
    return True


def timing_problem(values: dict, present: Collection[str]) -> str | None:
    """timeout <= interval: the problem with the timeout field, if any.

    Fills in the default timeout, min(4, interval), when none is present.
    values: the fields read so far (with "type"); present: every applicable
    field the entry has, whether or not its value was good.
    """
    if values.get("type") == "calculated" or values.get("type") is None:
        return None
    if "interval" in present and "interval" not in values:
        return None  # the interval was already reported; comparing would repeat it
    interval = values.get("interval", 30.0)
    if "timeout" not in present:
        values["timeout"] = min(4.0, interval)
        return None
    timeout = values.get("timeout")
    if timeout is not None and timeout > interval:
        return f"must be <= interval ({fmt_num(interval)})"
    return None


def normalize_thresholds(values: dict) -> None:
    """A success_threshold equal to failure_threshold is the default: drop it, so
    writing it out keeps the registry version."""
    if "success_threshold" in values and \
            values["success_threshold"] == values.get("failure_threshold", 3):
        del values["success_threshold"]


def threshold_problem(values: dict) -> str | None:
    """healthy_threshold may not exceed the number of children: such a check
    could never be healthy, which is always a mistake (use ``disabled`` or
    ``inverted`` to pin a state on purpose). 0 means always healthy."""
    threshold = values.get("healthy_threshold")
    children = values.get("children")
    if threshold is not None and children is not None and threshold > len(children):
        return f"must be <= the number of children ({len(children)})"
    return None


__all__ = [
    "EntryReader", "FIELDS_BY_TYPE", "KNOWN_FIELDS", "parse_checks_root", "read_checks",
    "gc_paused", "normalize_thresholds", "threshold_problem", "timing_problem",
]
