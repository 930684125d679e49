"""checks.yaml: the check registry, a tagged union on ``type``.

Each check type accepts its own set of fields; a field of another type is an
error ("does not apply to type tcp") rather than silently ignored, and a key
no type knows is "unknown field". Cross-check rules (duplicate ids, calculated
children that exist and form no cycle) run after every entry is read, and the
fleet rules (regions exist, private targets) run when a fleet is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from proto.config.addresses import forbidden_reason
from proto.config.errors import ConfigError
from proto.config.model import CHECK_TYPES, PROBE_TYPES, Check, Fleet, Registry
from proto.config.names import id_problem, ip_literal, is_domain_name, is_id, is_localhost
from proto.config.version import registry_version
from proto.config.yamlnodes import (
    Errors,
    Fields,
    MappingNode,
    Node,
    SequenceNode,
    as_bool,
    as_int,
    as_list,
    as_mapping,
    as_number,
    as_str,
    compose_stream,
    describe,
    fmt_num,
    line_of,
    quote,
)

SEARCH_WINDOW = 5120  # bytes of the body a search string must appear in
# Regions and children per check. Route 53 allows 256 children; a bound also
# keeps one list aliased into every check from costing checks x items.
MAX_LIST = 256
_BAD_PATH_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")

_COMMON = frozenset({"id", "type", "inverted", "disabled"})
_PROBE = _COMMON | {"host", "port", "interval", "timeout", "failure_threshold", "regions"}
FIELDS_BY_TYPE: dict[str, frozenset[str]] = {
    "http": _PROBE | {"path", "hostname", "search"},
    "https": _PROBE | {"path", "hostname", "search", "verify_tls"},
    "tcp": _PROBE,
    "grpc": _PROBE | {"hostname", "grpc_service"},
    "calculated": _COMMON | {"children", "healthy_threshold"},
}
KNOWN_FIELDS = frozenset().union(*FIELDS_BY_TYPE.values())
_TYPE_LIST = ", ".join(CHECK_TYPES)


Spot = tuple[str, int]       # a value and the line it is on
Item = tuple[str, int, int]  # a list item's value, line and index


@dataclass(slots=True)
class _Entry:
    """One check as read, with what later rules need to point at.

    Values and lines only, not nodes: a registry is read one entry at a time
    and each entry's nodes are dropped as soon as it is read.
    """

    check: Check | None
    path: str
    id: Spot | None = None                 # a well-formed id
    children: list[Item] = field(default_factory=list)
    regions: list[Item] = field(default_factory=list)
    host: Spot | None = None
    source: object = None                  # the entry's node when an alias may repeat it


class EntryReader:
    """Reads check entries one at a time while the file is being composed.

    Pass ``on_item`` as the hook of ``compose_stream(text, source, "checks",
    hook)``, then the reader to parse_checks_root.
    """

    def __init__(self, errors: Errors) -> None:
        self.errors = errors
        self.entries: list[_Entry] = []
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
    try:
        root, reader.streamed = compose_stream(text, source, "checks", reader.on_item)
    except ConfigError as exc:
        return None, exc.errors
    return parse_checks_root(root, errors, fleet, allow_private, reader), errors.lines()


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
    first_line = _check_duplicates(entries, errors)
    _check_children(entries, first_line, errors)
    if fleet is not None:
        _check_regions(entries, fleet, errors)
    if allow_private is not None and not allow_private:
        _check_private(entries, fleet, errors)
    if errors:
        return None
    checks = tuple(e.check for e in entries if e.check is not None)
    return Registry(checks=checks, version=registry_version(checks), source=errors.source)


def _parse_entry(node: Node, path: str, errors: Errors, source: object) -> _Entry:
    entry = _Entry(check=None, path=path, source=source)
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

    required = ("host", "port") if kind in PROBE_TYPES else ("children",) if kind else ()
    for key in required:
        if key not in present:
            errors.add(mapping, f.sub(key), f"required for type {kind}")
            ok = False

    for key, value_node in present.items():
        reader = _READERS[key]
        value = reader(value_node, f.sub(key), errors, entry)
        if value is None:
            ok = False
        else:
            values[key] = value

    ok &= _check_timing(values, present, f, errors)
    ok &= _check_threshold(values, present, f, errors)
    if ok:
        values.pop("type")
        entry.check = Check(type=kind, line=line_of(mapping), **values)  # type: ignore[arg-type]
    return entry


def _check_timing(values: dict, present: dict, f: Fields, errors: Errors) -> bool:
    """timeout <= interval; the default timeout is min(4, interval)."""
    if values.get("type") == "calculated" or values.get("type") is None:
        return True
    if "interval" in present and "interval" not in values:
        return True  # the interval was already reported; comparing would repeat it
    interval = values.get("interval", 30.0)
    if "timeout" not in present:
        values["timeout"] = min(4.0, interval)
        return True
    timeout = values.get("timeout")
    if timeout is not None and timeout > interval:
        errors.add(present["timeout"], f.sub("timeout"),
                   f"must be <= interval ({fmt_num(interval)})")
        return False
    return True


def _check_threshold(values: dict, present: dict, f: Fields, errors: Errors) -> bool:
    """healthy_threshold may not exceed the number of children: such a check
    could never be healthy, which is always a mistake (use ``disabled`` or
    ``inverted`` to pin a state on purpose). 0 means always healthy."""
    threshold = values.get("healthy_threshold")
    children = values.get("children")
    if threshold is not None and children is not None and threshold > len(children):
        errors.add(present["healthy_threshold"], f.sub("healthy_threshold"),
                   f"must be <= the number of children ({len(children)})")
        return False
    return True


def _read_host(node: Node, path: str, errors: Errors, entry: _Entry) -> str | None:
    host = as_str(node, path, errors)
    if host is None:
        return None
    entry.host = (host, line_of(node))
    ip = ip_literal(host)
    if ip is not None:
        return str(ip)
    if not is_domain_name(host):
        errors.add(node, path, f"must be an IP address or a host name (got {quote(host)})")
        return None
    return host.lower()  # names are case-insensitive; one spelling, one version


def _read_port(node: Node, path: str, errors: Errors, entry: _Entry) -> int | None:
    return as_int(node, path, errors, 1, 65535)


def _read_path(node: Node, path: str, errors: Errors, entry: _Entry) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    if not text.startswith("/"):
        errors.add(node, path, f"must start with '/' (got {quote(text)})")
        return None
    if _BAD_PATH_CHARS.search(text):
        errors.add(node, path, "must not contain spaces or control characters")
        return None
    return text


def _read_hostname(node: Node, path: str, errors: Errors, entry: _Entry) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    if ip_literal(text) is None and not is_domain_name(text):
        errors.add(node, path, f"must be a host name or an IP address (got {quote(text)})")
        return None
    ip = ip_literal(text)
    return str(ip) if ip is not None else text.lower()


def _read_search(node: Node, path: str, errors: Errors, entry: _Entry) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    size = len(text.encode("utf-8"))
    if size == 0 or size > SEARCH_WINDOW:
        errors.add(node, path, f"must be 1..{SEARCH_WINDOW} bytes (got {size})")
        return None
    return text


def _read_interval(node: Node, path: str, errors: Errors, entry: _Entry) -> float | None:
    return as_number(node, path, errors, 1, 300)


def _read_timeout(node: Node, path: str, errors: Errors, entry: _Entry) -> float | None:
    return as_number(node, path, errors, 0, None, lo_open=True)


def _read_failure_threshold(node: Node, path: str, errors: Errors, entry: _Entry) -> int | None:
    return as_int(node, path, errors, 1, 10)


def _read_bool(node: Node, path: str, errors: Errors, entry: _Entry) -> bool | None:
    return as_bool(node, path, errors)


def _read_grpc_service(node: Node, path: str, errors: Errors, entry: _Entry) -> str | None:
    return as_str(node, path, errors)


def _id_list(node: Node, path: str, errors: Errors, what: str,
             items_out: list[Item]) -> tuple[str, ...] | None:
    """A non-empty list of distinct ids; items_out receives each good item."""
    items = as_list(node, path, errors)
    if items is None:
        return None
    if not items:
        errors.add(node, path, f"must list at least one {what}")
        return None
    if len(items) > MAX_LIST:
        errors.add(node, path, f"must list at most {MAX_LIST} (got {len(items)})")
        return None
    seen: dict[str, int] = {}
    out: list[str] = []
    ok = True
    for i, item in enumerate(items):
        text = as_str(item, f"{path}[{i}]", errors)
        if text is None:
            ok = False
        elif not is_id(text):
            errors.add(item, f"{path}[{i}]", id_problem(text))
            ok = False
        elif text in seen:
            errors.add(item, f"{path}[{i}]", f"duplicate {what} {quote(text)}")
            ok = False
        else:
            seen[text] = i
            out.append(text)
            items_out.append((text, line_of(item), i))
    return tuple(out) if ok else None


def _read_regions(node: Node, path: str, errors: Errors, entry: _Entry) -> tuple | None:
    return _id_list(node, path, errors, "region", entry.regions)


def _read_children(node: Node, path: str, errors: Errors, entry: _Entry) -> tuple | None:
    return _id_list(node, path, errors, "child", entry.children)


def _read_healthy_threshold(node: Node, path: str, errors: Errors, entry: _Entry) -> int | None:
    return as_int(node, path, errors, 0, None)


_READERS = {
    "host": _read_host,
    "port": _read_port,
    "path": _read_path,
    "hostname": _read_hostname,
    "search": _read_search,
    "interval": _read_interval,
    "timeout": _read_timeout,
    "failure_threshold": _read_failure_threshold,
    "regions": _read_regions,
    "inverted": _read_bool,
    "disabled": _read_bool,
    "verify_tls": _read_bool,
    "grpc_service": _read_grpc_service,
    "children": _read_children,
    "healthy_threshold": _read_healthy_threshold,
}


def _check_duplicates(entries: list[_Entry], errors: Errors) -> dict[str, int]:
    """Report ids used twice, naming the first line; return id -> index of first."""
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.id is None:
            continue
        check_id, line = entry.id
        if check_id in first:
            earlier = entries[first[check_id]]
            if earlier.source is not None and earlier.source is entry.source:
                where = f"{earlier.path} repeated by an alias"
            else:
                where = f"first at line {earlier.id[1]}"  # type: ignore[index]
            errors.add(line, f"{entry.path}.id", f"duplicate id {quote(check_id)} ({where})")
        else:
            first[check_id] = i
    return first


def _check_children(entries: list[_Entry], index: dict[str, int], errors: Errors) -> None:
    """Every child exists; the graph of calculated checks has no cycle."""
    graph: dict[int, list[int]] = {}
    for i, entry in enumerate(entries):
        if not entry.children:
            continue
        edges = graph.setdefault(i, [])
        for child, line, j in entry.children:
            target = index.get(child)
            if target is None:
                errors.add(line, f"{entry.path}.children[{j}]", f"unknown check {quote(child)}")
            else:
                edges.append(target)
    for cycle in _cycles(graph):
        start = entries[cycle[0]]
        names = " -> ".join(entries[k].id[0] for k in cycle + [cycle[0]])  # type: ignore[index]
        errors.add(start.children[0][1], f"{start.path}.children", f"cycle {names}")


def _cycles(graph: dict[int, list[int]]) -> list[list[int]]:
    """One cycle per back edge found by an iterative depth-first search."""
    state: dict[int, int] = {}  # 1 on the stack, 2 done
    found: list[list[int]] = []
    for root in sorted(graph):
        if root in state:
            continue
        stack: list[tuple[int, int]] = [(root, 0)]
        path: list[int] = [root]
        state[root] = 1
        while stack:
            node, next_edge = stack[-1]
            edges = graph.get(node, [])
            if next_edge >= len(edges):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, next_edge + 1)
            child = edges[next_edge]
            if state.get(child) == 1:
                found.append(path[path.index(child):])
            elif child not in state:
                state[child] = 1
                stack.append((child, 0))
                path.append(child)
    return found


def _check_regions(entries: list[_Entry], fleet: Fleet, errors: Errors) -> None:
    known = ", ".join(fleet.regions)
    for entry in entries:
        for region, line, j in entry.regions:
            if region not in fleet.regions:
                errors.add(line, f"{entry.path}.regions[{j}]",
                           f"unknown region {quote(region)} (the fleet has {known})")


def _check_private(entries: list[_Entry], fleet: Fleet | None, errors: Errors) -> None:
    """Refuse literal targets in forbidden ranges (see proto.config.addresses).

    Host names other than localhost are resolved by the probes, which apply
    the same policy to the addresses they get.
    """
    hint = ("refused unless the fleet sets allow_private_targets: true"
            + ("" if fleet is not None else " (no fleet given, so it is false)"))
    problems: dict[str, str | None] = {}  # host -> problem; registries repeat hosts
    for entry in entries:
        if entry.host is None:
            continue
        host, line = entry.host
        if host not in problems:
            ip = ip_literal(host)
            if ip is not None:
                reason = forbidden_reason(ip)
                problems[host] = None if reason is None else f"{host} is a {reason} address"
            else:
                problems[host] = f"{host} is a loopback name" if is_localhost(host) else None
        problem = problems[host]
        if problem is not None:
            errors.add(line, f"{entry.path}.host", f"{problem}; {hint}")


__all__ = ["parse_checks_root", "FIELDS_BY_TYPE", "KNOWN_FIELDS", "SEARCH_WINDOW", "describe"]
