"""checks.yaml field by field: one reader per field, and what an entry keeps.

A reader takes the field's node, its path, the file's Errors and the entry
being read, and returns the value for Check or None after reporting why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from healthplane.proto.config import probe_fields
from healthplane.proto.config.model import Check
from healthplane.proto.config.names import id_problem, ip_literal, is_domain_name, is_id
from healthplane.proto.config.scalars import as_bool, as_int, as_list, as_number, as_str
from healthplane.proto.config.yamlnodes import Errors, Node, line_of, quote

SEARCH_WINDOW = 5120  # bytes of the body a search string must appear in
# Regions and children per check. Route 53 allows 256 children; a bound also
# keeps one list aliased into every check from costing checks x items.
MAX_LIST = 256
_BAD_PATH_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


Spot = tuple[str, int]       # a value and the line it is on
Item = tuple[str, int, int]  # a list item's value, line and index


@dataclass(slots=True)
class Entry:
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


def _read_host(node: Node, path: str, errors: Errors, entry: Entry) -> str | None:
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


def _read_port(node: Node, path: str, errors: Errors, entry: Entry) -> int | None:
    return as_int(node, path, errors, 1, 65535)


def _read_path(node: Node, path: str, errors: Errors, entry: Entry) -> str | None:
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


def _read_hostname(node: Node, path: str, errors: Errors, entry: Entry) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    if ip_literal(text) is None and not is_domain_name(text):
        errors.add(node, path, f"must be a host name or an IP address (got {quote(text)})")
        return None
    ip = ip_literal(text)
    return str(ip) if ip is not None else text.lower()


def _read_search(node: Node, path: str, errors: Errors, entry: Entry) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    size = len(text.encode("utf-8"))
    if size == 0 or size > SEARCH_WINDOW:
        errors.add(node, path, f"must be 1..{SEARCH_WINDOW} bytes (got {size})")
        return None
    return text


def _read_interval(node: Node, path: str, errors: Errors, entry: Entry) -> float | None:
    return as_number(node, path, errors, 1, 300)


def _read_timeout(node: Node, path: str, errors: Errors, entry: Entry) -> float | None:
    return as_number(node, path, errors, 0, None, lo_open=True)


def _read_failure_threshold(node: Node, path: str, errors: Errors, entry: Entry) -> int | None:
    return as_int(node, path, errors, 1, 10)


def _read_quorum(node: Node, path: str, errors: Errors, entry: Entry) -> int | None:
    return as_int(node, path, errors, 1, 1000)


def _read_bool(node: Node, path: str, errors: Errors, entry: Entry) -> bool | None:
    return as_bool(node, path, errors)


def _read_grpc_service(node: Node, path: str, errors: Errors, entry: Entry) -> str | None:
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


def _read_regions(node: Node, path: str, errors: Errors, entry: Entry) -> tuple | None:
    return _id_list(node, path, errors, "region", entry.regions)


def _read_children(node: Node, path: str, errors: Errors, entry: Entry) -> tuple | None:
    return _id_list(node, path, errors, "child", entry.children)


def _read_healthy_threshold(node: Node, path: str, errors: Errors, entry: Entry) -> int | None:
    return as_int(node, path, errors, 0, None)


READERS = {
    "host": _read_host,
    "port": _read_port,
    "path": _read_path,
    "hostname": _read_hostname,
    "search": _read_search,
    "interval": _read_interval,
    "timeout": _read_timeout,
    "failure_threshold": _read_failure_threshold,
    "success_threshold": _read_failure_threshold,
    "min_votes": _read_quorum,
    "min_regions": _read_quorum,
    "regions": _read_regions,
    "inverted": _read_bool,
    "disabled": _read_bool,
    "verify_tls": _read_bool,
    "grpc_service": _read_grpc_service,
    "children": _read_children,
    "healthy_threshold": _read_healthy_threshold,
    "tls": _read_bool,
    **probe_fields.READERS,
}
