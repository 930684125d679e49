"""checks.json: the check registry written as JSON, read fast.

JSON is YAML, so a ``.json`` registry means what the same text means to the
YAML loader; only the way it is read differs. A C decoder (msgspec, or the
standard library's where msgspec could read the text otherwise) turns the
file into plain values several times faster than YAML nodes are composed.
The entries are then read column by column (check_columns): each distinct
value of a field goes once through the same field reader as YAML
(check_fields.READERS) over a synthetic node, each distinct combination of
the fields the entry rules read goes once through those rules
(checks.timing_problem, threshold_problem), and the cross-entry rules
(check_rules) run over the same entries.

Plain values carry no lines. So the first problem of any kind sends the
text through the YAML node path, which reports every problem with its line:
messages come from one place only, and a valid file costs one pass. Where
the two readings of a text could differ, the value is left to the YAML
path: a number JSON reads but YAML 1.1 takes as text (``1e3``), a key
written twice (JSON keeps the last one silently, YAML reports it),
``NaN``. A JSON syntax error is reported by the standard library's decoder,
with its line.

A registry read from JSON has ``line`` 0 on every check (lines are only
for messages, which the YAML pass makes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any

from healthplane.proto.config import check_rules, probe_fields
from healthplane.proto.config.check_columns import (
    ABSENT,
    EntryColumns,
    defaults_of,
    fill_absent,
    read_column,
)
from healthplane.proto.config.check_fields import READERS, Entry
from healthplane.proto.config.check_table import RowTable
from healthplane.proto.config.checks import (
    FIELDS_BY_TYPE,
    gc_paused,
    read_checks,
    threshold_problem,
    timing_problem,
)
from healthplane.proto.config.checks_json_decode import ENTRY_FIELDS, column, decode
from healthplane.proto.config.checks_json_decode import Refused as _ExactPass
from healthplane.proto.config.model import Check, Fleet, Registry
from healthplane.proto.config.names import ID_RE
from healthplane.proto.config.version import VersionHash
from healthplane.proto.config.yamlload import decode_text
from healthplane.proto.config.yamlnodes import BOOL, FLOAT, INT, NULL, STR, Errors
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["read_checks_json"]

_MARK = Mark("", 0, 0, 0, None, None)
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_NO_ITEMS: tuple = ()
# Every id at once: one match over the ids joined by newlines, which no id has.
_IDS_MATCH = re.compile(f"(?:{ID_RE.pattern}\n)*").fullmatch
# The fields the entry rules read (checks.timing_problem, threshold_problem,
# probe_fields.entry_problems), kept ABSENT where an entry lacks them until
# the rules have run: presence matters to them (a timeout left out takes
# min(4, interval), a dns check's port 53). The host matters only to
# ip_family, and is left out of the combinations without it.
_RULE_FIELDS = ("type", "interval", "timeout", "healthy_threshold", "children", "method",
                "search", "ip_family", "verify_tls", "tls", "port", "query_name")
_ITEM_FIELDS = ("regions", "children")       # lists whose items the cross rules check
_DEFAULTS = defaults_of(Check)
_KINDS_WITH = {key: {kind for kind, fields in FIELDS_BY_TYPE.items() if key in fields}
               for key in ENTRY_FIELDS}
# The fields most registries use first: once every key is found the rest are skipped.
_COMMON = ("host", "port", "interval", "timeout", "failure_threshold", "path", "regions",
           "search", "children", "healthy_threshold")
_SCAN_ORDER = _COMMON + tuple(key for key in ENTRY_FIELDS if key not in _COMMON and key != "id")


def read_checks_json(read: Callable[[], bytes | bytearray], source: str, fleet: Fleet | None,
                     allow_private: bool | None) -> tuple[Registry | None, list[str]]:
    """Read checks.json: (registry or None, error lines), as read_checks does.

    read returns the file's bytes; it is called once, and once more for the
    YAML pass after a problem, so no caller need keep the bytes (150 MB at a
    million checks) alive while the registry is built.
    """
    registry = None
    try:
        with gc_paused():
            registry = _fast(read(), source, fleet, allow_private)
    except json.JSONDecodeError as exc:
        return None, [f"{source}:{exc.lineno}: JSON syntax error: {exc.msg} "
                      f"(column {exc.colno})"]
    except _ExactPass:
        pass
    except RecursionError:
        pass             # nesting: the YAML pass has a limit and a message for it
    if registry is not None:
        return registry, []
    return read_checks(decode_text(read(), source), source, fleet, allow_private)


def _colons(value: object) -> int:
    """Keys and ':' inside strings in a decoded value (see _decode)."""
    kind = type(value)
    if kind is str:
        return value.count(":")  # type: ignore[attr-defined]
    if kind is list:
        return sum(map(_colons, value))  # type: ignore[call-overload]
    if kind is dict:
        return sum(1 + k.count(":") + _colons(v) for k, v in value.items())  # type: ignore[attr-defined]
    return 0


def _fast(data: bytes | bytearray, source: str, fleet: Fleet | None,
          allow_private: bool | None) -> Registry:
    items, rest, colons = decode(data)
    del data
    if any(not key.startswith("x-") for key in rest):
        raise _ExactPass
    found = 1 + _colons(rest)            # "checks" and the rest of the document
    del rest
    count = len(items)
    columns, found_in_entries = _read_entries(items, None if colons is None else colons - found)
    del items
    if colons is not None and found + found_in_entries != colons:
        raise _ExactPass                 # a key written twice in some object
    no_items = [_NO_ITEMS] * count
    entries = EntryColumns(columns["id"], columns.get("@host") or [None] * count,
                           columns.get("@regions", no_items), columns.get("@children", no_items))
    errors = Errors(source)
    check_rules.check_cross_entry(entries, errors, fleet, allow_private)
    if errors:
        raise _ExactPass
    del entries
    _normalize_thresholds(columns)
    # Stored by field straight from the columns: no Check is made at all.
    checks = RowTable.from_columns(Check, count, columns)
    version = VersionHash()
    version.add_columns(columns, checks)
    return Registry(checks=checks, version=version.hexdigest(), source=source)


def _read_entries(items: list, left: int | None) -> tuple[dict[str, Any], int]:
    """(Check's columns, keys and colons in the entries' strings), or _ExactPass.

    left: the colons of the text not yet accounted for, when known. Each
    key found takes one, so once they are all taken the fields not yet
    looked at are on no entry, and are not looked at (most registries use
    a few of the fields only).

    The columns hold the values each check is built from, defaults filled
    in (a field no entry has has no column: its default throughout), plus
    "@host", "@regions" and "@children": what the cross-entry rules look at.
    """
    count = len(items)
    ids = column(items, "id")
    try:
        if _IDS_MATCH("\n".join(ids) + "\n") is None:
            raise _ExactPass
    except TypeError:                  # an id that is no string
        raise _ExactPass from None
    columns: dict[str, Any] = {"id": ids, "type": column(items, "type")}
    found = 2 * count                  # "id" and "type"; ids, types and keys hold no ':'
    scratch = Errors("")
    kinds = set(columns["type"])
    for key in _SCAN_ORDER:
        if left is not None and found == left:
            break                      # every ':' of the text accounted for: no more keys
        if kinds.isdisjoint(_KINDS_WITH[key]):
            continue                   # (no entry of a type that has it: a dns field, say)
        raw = column(items, key)
        default = ABSENT if key in _RULE_FIELDS else _DEFAULTS.get(key, ABSENT)
        values, distinct, present = read_column(raw, partial(_read_field, key, scratch), default)
        if not present:
            continue
        found += present + _column_colons(raw, distinct)
        if key == "host":
            spots: dict[Any, tuple[Any, int] | None] = {v: (v, 0) for v in distinct}
            spots[ABSENT] = None
            columns["@host"] = list(map(spots.__getitem__, raw))
        columns[key] = values
    _apply_rules(columns, count)
    for key in _ITEM_FIELDS:
        lists = columns.get(key)
        if lists is not None:
            items_of = {v: _items(v) for v in dict.fromkeys(lists)}
            columns["@" + key] = list(map(items_of.__getitem__, lists))
    for key in _RULE_FIELDS:
        filled = columns.get(key)
        if filled is not None and key in _DEFAULTS:
            columns[key] = fill_absent(filled, _DEFAULTS[key])
    return columns, found



def _column_colons(raw: list, distinct: list) -> int:
    if distinct and not any(map(_colons, distinct)):
        return 0                # the common case: no value has one
    return sum(map(_colons, raw))


def _read_field(key: str, scratch: Errors, value: object) -> object:
    """The value key's reader gives for value; _ExactPass if it refuses it
    (scratch is left empty for the next value: a refusal need not end the
    fast path, see check_columns._reads_alike)."""
    read = READERS[key](_node(value), key, scratch, Entry(check=None, path=""))
    if read is None or scratch:
        scratch.clear()
        raise _ExactPass
    return read


def _items(value: Any) -> tuple:
    """A list field's items as the cross-entry rules see them."""
    if value is ABSENT:
        return _NO_ITEMS
    return tuple((text, 0, i) for i, text in enumerate(value))


def _apply_rules(columns: dict[str, Any], count: int) -> None:
    """Run the entry rules once per distinct combination of what they read,
    and fill in what they give an entry that has none (timeout, port)."""
    # A field no entry has is ABSENT throughout: it tells no combination apart.
    names = [key for key in _RULE_FIELDS if key in columns]
    # Fields that matter only beside another (see probe_fields.entry_problems):
    # left out without it, fewer combinations are told apart.
    if "ip_family" in columns:
        names.append("host")
    if "method" not in columns and "search" in names:
        names.remove("search")
    if "dns" not in set(columns["type"]) and "port" in names:
        names.remove("port")
    filled_keys = ["timeout"] + (["port"] if "port" in names else [])
    rule_columns = [columns[key] for key in names]
    outcome: dict[tuple, tuple] = {}
    for combo in dict.fromkeys(zip(*rule_columns, strict=True)):
        values = {k: v for k, v in zip(names, combo, strict=True) if v is not ABSENT}
        present = set(values)
        if (probe_fields.entry_problems(values["type"], values, present)
                or timing_problem(values, present) or threshold_problem(values)):
            raise _ExactPass
        outcome[combo] = tuple(values.get(key, ABSENT) for key in filled_keys)
    filled = list(map(outcome.__getitem__, zip(*rule_columns, strict=True)))
    for i, key in enumerate(filled_keys):
        columns[key] = list(map(itemgetter(i), filled))


def _normalize_thresholds(columns: dict[str, Any]) -> None:
    """As checks.normalize_thresholds, a column at a time: a success_threshold equal
    to its failure_threshold is the default (None), so writing it out keeps the
    registry version."""
    rise = columns.get("success_threshold")
    if rise is None or not any(v is not None for v in rise):
        return
    fall = columns.get("failure_threshold") or [3] * len(rise)
    columns["success_threshold"] = [None if r == f else r for r, f in zip(rise, fall, strict=True)]


def _node(value: object) -> Node:
    """The node the YAML path composes for a JSON value."""
    kind = type(value)
    if kind is str:
        return ScalarNode(STR, value, _MARK, _MARK)
    if kind is bool:
        return ScalarNode(BOOL, "true" if value else "false", _MARK, _MARK)
    if kind is int:
        return ScalarNode(INT, str(value), _MARK, _MARK)
    if kind is float:
        return ScalarNode(FLOAT, repr(value), _MARK, _MARK)
    if value is None:
        return ScalarNode(NULL, "null", _MARK, _MARK)
    if kind is list:
        return SequenceNode(_SEQ, [_node(v) for v in value], _MARK, _MARK)  # type: ignore[attr-defined]
    if kind is dict:   # keys are strings and unique (see _duplicate_free)
        return MappingNode(_MAP, [(ScalarNode(STR, k, _MARK, _MARK), _node(v))
                                  for k, v in value.items()], _MARK, _MARK)  # type: ignore[attr-defined]
    return MappingNode(_MAP, [], _MARK, _MARK)


