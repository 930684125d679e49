"""zone.yaml: health-aware A and AAAA records (and plain CNAMEs) under one zone.

Names are absolute whether or not they end with a dot (as in Route 53) and
are kept lower case with the dot; a name outside the zone is an error, which
also catches a relative name such as ``api`` written by habit from zone files.
"""

from __future__ import annotations

import ipaddress
from typing import get_args

from healthplane.proto.config.model import Policy, Record, RecordType, RecordValue, Registry, Zone
from healthplane.proto.config.names import absolute_name, is_domain_name
from healthplane.proto.config.scalars import as_int, as_list, as_mapping, as_str
from healthplane.proto.config.yamlnodes import Errors, Fields, MappingNode, Node, line_of, quote
from healthplane.proto.config.zone_apex import parse_nameservers, parse_soa, parse_transfer

TTL_MAX = 2**31 - 1            # RFC 2181 section 8
MAX_WEIGHT = 255
MULTIVALUE_ANSWERS = 8         # answers per response; a record may list more values
MAX_VALUES = 256               # per record, so one answer set stays small to choose from
POLICIES: tuple[str, ...] = get_args(Policy)
RECORD_TYPES: tuple[str, ...] = get_args(RecordType)
ZONE_FIELDS = frozenset({"zone", "ttl", "records", "soa", "nameservers", "transfer"})
RECORD_FIELDS = frozenset({"name", "type", "policy", "ttl", "values", "primary", "secondary"})
VALUE_FIELDS = frozenset({"value", "check", "weight"})


def parse_zone_root(root: MappingNode, errors: Errors, registry: Registry | None) -> Zone | None:
    """Read a composed zone.yaml; None when errors were found.

    With a registry, every record's check must be one of its ids.
    """
    f = Fields(root, "", errors)
    f.reject_unknown(ZONE_FIELDS, extensions=True)
    zone: str | None = None
    node = f.require("zone")
    if node is not None and (text := as_str(node, "zone", errors)) is not None:
        if text in (".", "") or not is_domain_name(text):
            errors.add(node, "zone",
                       f"must be a domain name such as example.com. (got {quote(text)})")
        else:
            zone = absolute_name(text)
    ttl = 30
    node = f.get("ttl")
    if node is not None:
        ttl = as_int(node, "ttl", errors, 0, TTL_MAX) or 0
    extras: dict[str, object] = {}
    if (node := f.get("soa")) is not None:
        extras["soa"] = parse_soa(node, errors)
    if (node := f.get("nameservers")) is not None:
        extras["nameservers"] = parse_nameservers(node, zone, errors)
    if (node := f.get("transfer")) is not None:
        extras["transfer"] = parse_transfer(node, errors)
    records: list[Record] = []
    node = f.require("records")
    items = as_list(node, "records", errors) if node is not None else None
    seen: dict[tuple[str, str], int] = {}
    names: dict[str, tuple[str, int]] = {}        # name -> (first type, its line)
    check_ids = frozenset(registry.ids) if registry is not None else None
    for i, item in enumerate(items or []):
        parsed = _record(item, f"records[{i}]", zone, check_ids, errors)
        if parsed is None:
            continue
        record, name_line = parsed
        key = (record.name, record.type)
        if key in seen:
            errors.add(name_line, f"records[{i}].name",
                       f"duplicate record {record.name} {record.type} "
                       f"(first at line {seen[key]})")
        else:
            seen[key] = name_line
        first = names.setdefault(record.name, (record.type, name_line))
        if first[1] != name_line and "CNAME" in (record.type, first[0]):
            # RFC 1034 3.6.2: a CNAME is the only record at its name.
            errors.add(name_line, f"records[{i}].name", f"{record.name} has a CNAME and "
                       f"another record (first at line {first[1]})")
        elif record.type == "CNAME" and record.name == zone:
            errors.add(name_line, f"records[{i}].name",
                       "the zone apex cannot be a CNAME (it holds the SOA and NS)")
        records.append(record)
    for ns in extras.get("nameservers") or ():  # type: ignore[attr-defined]
        if ns.address is not None and ns.name in names:
            errors.add(names[ns.name][1], "nameservers",
                       f"glue for {ns.name} duplicates the record at this line: keep one")
    if errors or zone is None:
        return None
    return Zone(zone=zone, records=tuple(records), ttl=ttl, source=errors.source,
                **extras)  # type: ignore[arg-type]


def _record(node: Node, path: str, zone: str | None, check_ids: frozenset[str] | None,
            errors: Errors) -> tuple[Record, int] | None:
    """The record and the line of its name, or None after reporting why."""
    mapping = as_mapping(node, path, errors)
    if mapping is None:
        return None
    f = Fields(mapping, path, errors)
    f.reject_unknown(RECORD_FIELDS)
    ok = True

    name = None
    name_node = f.require("name")
    if name_node is not None and (text := as_str(name_node, f.sub("name"), errors)) is not None:
        if not is_domain_name(text):
            errors.add(name_node, f.sub("name"), f"must be a domain name (got {quote(text)})")
        else:
            name = absolute_name(text)
            if zone is not None and name != zone and not name.endswith("." + zone):
                errors.add(name_node, f.sub("name"), f"{quote(text)} is not inside zone {zone}")
                ok = False
    kind = _choice(f, "type", RECORD_TYPES, None, errors)
    policy = _choice(f, "policy", POLICIES, "simple", errors)
    ttl = None
    node = f.get("ttl")
    if node is not None:
        ttl = as_int(node, f.sub("ttl"), errors, 0, TTL_MAX)
        ok &= ttl is not None
    if name is None or kind is None or policy is None:
        ok = False
    if kind == "CNAME" and policy not in ("simple", None):
        errors.add(f.get("policy") or mapping, f.sub("policy"),
                   f"must be simple for type CNAME (got {policy})")
        return None

    values: tuple[RecordValue, ...] = ()
    primary = secondary = None
    if policy == "failover":
        for key in ("values",):
            if f.get(key) is not None:
                errors.add(f.key_node(key), f.sub(key), "does not apply to policy failover "
                                                         "(use primary and secondary)")
                ok = False
        slots: list[RecordValue | None] = []
        for key in ("primary", "secondary"):
            slot_node = f.get(key)
            if slot_node is None:
                errors.add(mapping, f.sub(key), "required for policy failover")
                ok = False
                slots.append(None)
                continue
            slots.append(_value(slot_node, f.sub(key), kind, policy, check_ids, errors))
        primary, secondary = slots
        ok &= primary is not None and secondary is not None
    elif policy is not None:
        for key in ("primary", "secondary"):
            if f.get(key) is not None:
                errors.add(f.key_node(key), f.sub(key),
                           f"does not apply to policy {policy} (failover only)")
                ok = False
        values_node = f.get("values")
        if values_node is None:
            errors.add(mapping, f.sub("values"), f"required for policy {policy}")
            return None
        parsed = _values(values_node, f.sub("values"), kind, policy, check_ids, errors)
        if parsed is None:
            return None
        values = parsed
        if kind == "CNAME" and len(values) != 1:
            errors.add(values_node, f.sub("values"),
                       f"a CNAME has exactly one value (got {len(values)})")
            return None
        if kind == "CNAME" and values[0].check is not None:
            errors.add(values_node, f.sub("values") + "[0].check",
                       "does not apply to type CNAME (a CNAME has no health)")
            return None
    if not ok:
        return None
    record = Record(name=name, type=kind, policy=policy, values=values,  # type: ignore[arg-type]
                    primary=primary, secondary=secondary, ttl=ttl, line=line_of(mapping))
    return record, line_of(name_node)


def _choice(f: Fields, key: str, allowed: tuple[str, ...], default: str | None,
            errors: Errors) -> str | None:
    node = f.require(key) if default is None else f.get(key)
    if node is None:
        return default
    text = as_str(node, f.sub(key), errors)
    if text is not None and text not in allowed:
        errors.add(node, f.sub(key), f"must be one of {', '.join(allowed)} (got {quote(text)})")
        return None
    return text


def _values(node: Node, path: str, kind: str | None, policy: str,
            check_ids: frozenset[str] | None, errors: Errors) -> tuple[RecordValue, ...] | None:
    items = as_list(node, path, errors)
    if items is None:
        return None
    if not items:
        errors.add(node, path, "must list at least one value")
        return None
    if len(items) > MAX_VALUES:
        errors.add(node, path, f"must list at most {MAX_VALUES} values (got {len(items)})")
        return None
    out: list[RecordValue] = []
    first_line: dict[str, int] = {}
    ok = True
    for i, item in enumerate(items):
        value = _value(item, f"{path}[{i}]", kind, policy, check_ids, errors)
        if value is None:
            ok = False
            continue
        if value.value in first_line:
            errors.add(item, f"{path}[{i}].value",
                       f"duplicate value {value.value} (first at line {first_line[value.value]})")
            ok = False
            continue
        first_line[value.value] = line_of(item)
        out.append(value)
    return tuple(out) if ok else None


def _value(node: Node, path: str, kind: str | None, policy: str | None,
           check_ids: frozenset[str] | None, errors: Errors) -> RecordValue | None:
    mapping = as_mapping(node, path, errors)
    if mapping is None:
        return None
    f = Fields(mapping, path, errors)
    f.reject_unknown(VALUE_FIELDS)
    ok = True
    address = None
    value_node = f.require("value")
    text = as_str(value_node, f.sub("value"), errors) if value_node is not None else None
    if value_node is not None and text is not None and kind == "CNAME":
        address = absolute_name(text) if is_domain_name(text) and text != "." else None
        if address is None:
            errors.add(value_node, f.sub("value"),
                       f"must be a domain name for type CNAME (got {quote(text)})")
    elif value_node is not None and text is not None:
        address = _address(text, kind)
        if address is None:
            family = {"A": "an IPv4", "AAAA": "an IPv6"}.get(kind or "", "an IP")
            errors.add(value_node, f.sub("value"),
                       f"must be {family} address for type {kind or '?'} (got {quote(text)})")
    ok &= address is not None
    check = None
    check_node = f.get("check")
    if check_node is not None:
        check = as_str(check_node, f.sub("check"), errors)
        if check is not None and check_ids is not None and check not in check_ids:
            errors.add(check_node, f.sub("check"), f"unknown check {quote(check)}")
            ok = False
        ok &= check is not None
    weight = 1
    weight_node = f.get("weight")
    if weight_node is not None:
        if policy != "weighted":
            errors.add(f.key_node("weight"), f.sub("weight"),
                       f"does not apply to policy {policy} (weighted only)")
            ok = False
        else:
            parsed = as_int(weight_node, f.sub("weight"), errors, 0, MAX_WEIGHT)
            ok &= parsed is not None
            weight = parsed if parsed is not None else 1
    if not ok or address is None:
        return None
    return RecordValue(value=address, check=check, weight=weight)


def _address(text: str, kind: str | None) -> str | None:
    """The address in canonical spelling, or None if it is not of the record's family."""
    if "%" in text:  # a scoped address means nothing to a resolver elsewhere
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if kind == "A" and ip.version != 4 or kind == "AAAA" and ip.version != 6:
        return None
    return str(ip)
