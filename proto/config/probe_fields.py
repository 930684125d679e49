"""checks.yaml: the readers and rules of the fields that shape a probe.

``method``, ``headers`` and ``expected_status`` (http/https), ``send`` and
``expect`` (tcp), ``ip_family``, ``tls`` (grpc), and the dns check's
``query_name``, ``query_type`` and ``expect_rcode``. Each reader has the
signature of those in :mod:`healthplane.proto.config.check_fields`;
:func:`entry_problems` holds the rules that join two fields of one entry.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
from healthplane.proto.config.names import ip_literal
from healthplane.proto.config.scalars import as_list, as_mapping, as_str
from healthplane.proto.config.yamlnodes import Errors, Fields, Node, ScalarNode, describe, quote

PAYLOAD_LIMIT = 5120   # bytes of send and of expect
MAX_HEADERS = 32
MAX_HEADER_BYTES = 4096          # name and value of one header
METHODS = ("GET", "HEAD")
FAMILIES = ("any", "ipv4", "ipv6")
# RFC 9110 token characters: anything else in a name could split the request.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
# Headers the probe itself owns: the request must stay one bodiless request
# on a connection that closes, for the same target.
_OWNED = {"host": "is the check's hostname; set hostname instead",
          "connection": "is set by the checker (every probe is a new connection)",
          "content-length": "is set by the checker (the request has no body)",
          "transfer-encoding": "is set by the checker (the request has no body)"}
_STATUS_RANGE = re.compile(r"([0-9]{3})(?:-([0-9]{3}))?")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
          "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE")


def _one_of(node: Node, path: str, errors: Errors, choices: tuple[str, ...]) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    if text not in choices:
        errors.add(node, path, f"must be one of {', '.join(choices)} (got {quote(text)})")
        return None
    return text


def read_method(node: Node, path: str, errors: Errors, entry: object) -> str | None:
    return _one_of(node, path, errors, METHODS)


def read_ip_family(node: Node, path: str, errors: Errors, entry: object) -> str | None:
    return _one_of(node, path, errors, FAMILIES)


def read_headers(node: Node, path: str, errors: Errors,
                 entry: object) -> tuple[tuple[str, str], ...] | None:
    mapping = as_mapping(node, path, errors)
    if mapping is None:
        return None
    f = Fields(mapping, path, errors)
    if len(f.entries) > MAX_HEADERS:
        errors.add(node, path, f"must have at most {MAX_HEADERS} headers (got {len(f.entries)})")
        return None
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    ok = True
    for name, (key_node, value_node) in f.entries.items():
        sub = f.sub(name)
        if _TOKEN.fullmatch(name) is None:
            errors.add(key_node, sub, "must be a header name (letters, digits and "
                       "!#$%&'*+-.^_`|~)")
            ok = False
            continue
        owned = _OWNED.get(name.lower())
        if owned is not None:
            errors.add(key_node, sub, owned)
            ok = False
            continue
        if name.lower() in seen:
            errors.add(key_node, sub, "duplicate header (names are case-insensitive)")
            ok = False
            continue
        seen.add(name.lower())
        value = as_str(value_node, sub, errors)
        if value is None:
            ok = False
        elif _BAD_VALUE.search(value):
            errors.add(value_node, sub, "must not contain CR, LF or NUL")
            ok = False
        elif not all(ord(ch) < 256 for ch in value):
            errors.add(value_node, sub, "must be Latin-1 text (HTTP/1.1 header values)")
            ok = False
        elif len(name) + len(value) > MAX_HEADER_BYTES:
            errors.add(value_node, sub, f"must be at most {MAX_HEADER_BYTES} bytes with its name")
            ok = False
        else:
            out.append((name, value.strip(" \t")))
    return tuple(out) if ok else None


def _status_item(node: Node, path: str, errors: Errors) -> tuple[int, int] | None:
    text = node.value if isinstance(node, ScalarNode) and node.tag.endswith((":int", ":str")) \
        else None
    match = _STATUS_RANGE.fullmatch(text) if text is not None else None
    if match is not None:
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if 100 <= lo <= hi <= 599:
            return lo, hi
    shown = quote(node.value) if isinstance(node, ScalarNode) else describe(node)
    errors.add(node, path, f'must be a status code 100..599 or a range "a-b" (got {shown})')
    return None


def read_expected_status(node: Node, path: str, errors: Errors,
                         entry: object) -> tuple[tuple[int, int], ...] | None:
    if isinstance(node, ScalarNode):
        item = _status_item(node, path, errors)
        return None if item is None else (item,)
    items = as_list(node, path, errors)
    if items is None:
        return None
    if not items or len(items) > 64:
        errors.add(node, path, f"must list 1..64 codes or ranges (got {len(items)})")
        return None
    out = [_status_item(item, f"{path}[{i}]", errors) for i, item in enumerate(items)]
    if any(item is None for item in out):
        return None
    return tuple(sorted(set(out)))  # type: ignore[arg-type]


def read_payload(node: Node, path: str, errors: Errors, entry: object) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    size = len(text.encode("utf-8"))
    if size == 0 or size > PAYLOAD_LIMIT:
        errors.add(node, path, f"must be 1..{PAYLOAD_LIMIT} bytes (got {size})")
        return None
    return text


def read_query_name(node: Node, path: str, errors: Errors, entry: object) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    try:
        # Wider than a host name: a DNS server may be asked for _srv._tcp names.
        name = dns.name.from_text(text) if text.isascii() and text.strip() == text else None
    except dns.exception.DNSException:
        name = None
    if name is None:
        errors.add(node, path, f"must be a domain name (got {quote(text)})")
        return None
    return name.to_text().lower()   # absolute, one spelling


def read_query_type(node: Node, path: str, errors: Errors, entry: object) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    try:
        value = dns.rdatatype.from_text(text)
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        value = None
    if value is None or dns.rdatatype.is_metatype(value) or text.upper().startswith("TYPE"):
        errors.add(node, path, f"must be a record type such as A, AAAA, MX (got {quote(text)})")
        return None
    return dns.rdatatype.to_text(value)


def read_expect_rcode(node: Node, path: str, errors: Errors, entry: object) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    if text.upper() not in RCODES:
        errors.add(node, path, f"must be one of {', '.join(RCODES)} (got {quote(text)})")
        return None
    return dns.rcode.to_text(dns.rcode.from_text(text.upper()))


READERS = {
    "method": read_method,
    "headers": read_headers,
    "expected_status": read_expected_status,
    "send": read_payload,
    "expect": read_payload,
    "ip_family": read_ip_family,
    "query_name": read_query_name,
    "query_type": read_query_type,
    "expect_rcode": read_expect_rcode,
}


def entry_problems(kind: str | None, values: dict,
                   present: Collection[str]) -> list[tuple[str, str]]:
    """(field, message) for each rule joining two fields of one entry that fails.

    values: the fields read so far (with "type"); present: every field the
    entry has. Fills in what a type defaults differently (a dns check's
    port, 53). Both the YAML and the JSON reader call this.
    """
    problems = []
    if values.get("method") == "HEAD" and "search" in present:
        problems.append(("search", "needs method GET (HEAD has no body)"))
    family = values.get("ip_family", "any")
    host = values.get("host")
    if family != "any" and host is not None:
        ip = ip_literal(host)
        if ip is not None and (ip.version == 6) != (family == "ipv6"):
            problems.append(("ip_family", f"cannot reach host {host}, an IPv{ip.version} address"))
    if kind == "grpc" and values.get("verify_tls") and not values.get("tls"):
        problems.append(("verify_tls", "needs tls: true"))
    if kind == "dns":
        values.setdefault("port", 53)
        if "query_name" not in present:
            problems.append(("query_name", "required for type dns"))
    return problems
