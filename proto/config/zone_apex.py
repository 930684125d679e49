"""zone.yaml's apex and transfer fields: ``soa``, ``nameservers``, ``transfer``.

Each reader takes the node of its field and reports problems with the line
of the offending value; defaults are those of :class:`~.model.Soa`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress

from healthplane.proto.config.addresses import parse_hostport
from healthplane.proto.config.model import NameServer, Soa, Transfer, Tsig
from healthplane.proto.config.names import absolute_name, is_domain_name
from healthplane.proto.config.scalars import as_int, as_list, as_mapping, as_str
from healthplane.proto.config.yamlnodes import Errors, Fields, Node, quote

SOA_TIMERS = {"refresh": 3600, "retry": 600, "expire": 604800}
SOA_FIELDS = frozenset({"mname", "rname", *SOA_TIMERS, "minimum"})
NS_FIELDS = frozenset({"name", "address"})
TRANSFER_FIELDS = frozenset({"allow", "notify", "tsig"})
TSIG_FIELDS = frozenset({"name", "algorithm", "secret"})
# What dnspython (and every server healthplane is tested with) can sign with.
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")
MAX_NAMESERVERS = 13           # as many as a root-style NS set; a referral stays small
MAX_PEERS = 64


def _name(node: Node, path: str, errors: Errors) -> str | None:
    text = as_str(node, path, errors)
    if text is None:
        return None
    if text in (".", "") or not is_domain_name(text):
        errors.add(node, path, f"must be a domain name (got {quote(text)})")
        return None
    return absolute_name(text)


def parse_soa(node: Node, errors: Errors) -> Soa | None:
    mapping = as_mapping(node, "soa", errors)
    if mapping is None:
        return None
    f = Fields(mapping, "soa", errors)
    f.reject_unknown(SOA_FIELDS)
    names: dict[str, str | None] = {"mname": None, "rname": None}
    for key in names:
        if (sub := f.get(key)) is not None:
            names[key] = _name(sub, f.sub(key), errors)
    timers: dict[str, int | None] = dict(SOA_TIMERS)
    timers["minimum"] = None
    for key in (*SOA_TIMERS, "minimum"):
        if (sub := f.get(key)) is not None:
            # RFC 1035 3.3.13: 32-bit; RFC 2308 caps negative caching at 3 hours.
            hi = 10800 if key == "minimum" else 2**31 - 1
            timers[key] = as_int(sub, f.sub(key), errors, 0, hi)
    if errors:
        return None
    return Soa(mname=names["mname"], rname=names["rname"], **timers)  # type: ignore[arg-type]


def parse_nameservers(node: Node, zone: str | None, errors: Errors) -> tuple[NameServer, ...]:
    items = as_list(node, "nameservers", errors)
    if items is None:
        return ()
    if not items or len(items) > MAX_NAMESERVERS:
        errors.add(node, "nameservers", f"must list 1..{MAX_NAMESERVERS} name servers "
                   f"(got {len(items)})")
        return ()
    out: list[NameServer] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        path = f"nameservers[{i}]"
        mapping = as_mapping(item, path, errors)
        if mapping is None:
            continue
        f = Fields(mapping, path, errors)
        f.reject_unknown(NS_FIELDS)
        name_node = f.require("name")
        name = _name(name_node, f.sub("name"), errors) if name_node is not None else None
        if name is not None and name in seen:
            errors.add(name_node, f.sub("name"),
                       f"duplicate name server {name} (first at line {seen[name]})")
            continue
        address = None
        if (addr_node := f.get("address")) is not None:
            text = as_str(addr_node, f.sub("address"), errors)
            try:
                address = str(ipaddress.ip_address(text or "")) if text and "%" not in text \
                    else None
            except ValueError:
                address = None
            if text is not None and address is None:
                errors.add(addr_node, f.sub("address"),
                           f"must be an IP address (got {quote(text)})")
            elif address is not None and name is not None and zone is not None \
                    and name != zone and not name.endswith("." + zone):
                errors.add(addr_node, f.sub("address"),
                           f"glue is for a name inside zone {zone} ({name} is not)")
                address = None
        if name is not None:
            seen[name] = name_node.start_mark.line + 1  # type: ignore[union-attr]
            out.append(NameServer(name=name, address=address))
    return tuple(out)


def parse_transfer(node: Node, errors: Errors) -> Transfer | None:
    mapping = as_mapping(node, "transfer", errors)
    if mapping is None:
        return None
    f = Fields(mapping, "transfer", errors)
    f.reject_unknown(TRANSFER_FIELDS)
    allow: list[str] = []
    allow_node = f.require("allow")
    for i, item in enumerate(_peers(allow_node, "transfer.allow", errors)):
        text = as_str(item, f"transfer.allow[{i}]", errors)
        try:
            allow.append(str(ipaddress.ip_network(text or "", strict=False)))
        except ValueError:
            if text is not None:
                errors.add(item, f"transfer.allow[{i}]",
                           f"must be an address or network such as 192.0.2.0/24 "
                           f"(got {quote(text)})")
    notify: list[str] = []
    notify_node = f.get("notify")
    for i, item in enumerate(_peers(notify_node, "transfer.notify", errors)):
        text = as_str(item, f"transfer.notify[{i}]", errors)
        if text is None:
            continue
        try:
            host, _port = parse_hostport(text)
            ipaddress.ip_address(host)
            notify.append(text)
        except ValueError:
            errors.add(item, f"transfer.notify[{i}]",
                       f"must be IP:PORT of a secondary, such as 192.0.2.53:53 "
                       f"(got {quote(text)})")
    tsig = None
    if (tsig_node := f.get("tsig")) is not None:
        tsig = _tsig(tsig_node, errors)
    if errors:
        return None
    return Transfer(allow=tuple(allow), notify=tuple(notify), tsig=tsig)


def _peers(node: Node | None, path: str, errors: Errors) -> list[Node]:
    if node is None:
        return []
    items = as_list(node, path, errors)
    if items is None:
        return []
    if len(items) > MAX_PEERS:
        errors.add(node, path, f"must list at most {MAX_PEERS} entries (got {len(items)})")
        return []
    return items


def _tsig(node: Node, errors: Errors) -> Tsig | None:
    mapping = as_mapping(node, "transfer.tsig", errors)
    if mapping is None:
        return None
    f = Fields(mapping, "transfer.tsig", errors)
    f.reject_unknown(TSIG_FIELDS)
    name_node, alg_node, secret_node = (f.require(k) for k in ("name", "algorithm", "secret"))
    name = _name(name_node, f.sub("name"), errors) if name_node is not None else None
    algorithm = as_str(alg_node, f.sub("algorithm"), errors) if alg_node is not None else None
    if algorithm is not None and algorithm.lower() not in TSIG_ALGORITHMS:
        errors.add(alg_node, f.sub("algorithm"),
                   f"must be one of {', '.join(TSIG_ALGORITHMS)} (got {quote(algorithm)})")
        algorithm = None
    secret = as_str(secret_node, f.sub("secret"), errors) if secret_node is not None else None
    if secret is not None:
        try:
            if not base64.b64decode(secret, validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            errors.add(secret_node, f.sub("secret"),
                       "must be a non-empty base64 key (as keymgr or tsig-keygen print)")
            secret = None
    if name is None or algorithm is None or secret is None:
        return None
    return Tsig(name=name, algorithm=algorithm.lower(), secret=secret)
