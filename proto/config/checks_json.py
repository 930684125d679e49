"""checks.json: the check registry written as JSON, read fast.

JSON is YAML, so a ``.json`` registry means what the same text means to the
YAML loader; only the way it is read differs. The standard library's C
decoder turns the file into plain values several times faster than YAML
nodes are composed, and each entry is then checked by the same field
readers (check_fields.READERS), entry rules (checks.timing_problem,
threshold_problem) and cross-entry rules (check_rules) as the YAML path,
over one synthetic node per distinct value (field values recur across a
registry, so each is read once per load).

Plain values carry no lines. So the first problem of any kind sends the
text through the YAML node path, which reports every problem with its line:
messages come from one place only, and a valid file costs one pass. Where
the two readings of a text could differ, the value is left to the YAML
path: a number JSON reads but YAML 1.1 takes as text (``1e3``), a key
written twice (JSON keeps the last one silently, YAML reports it),
``NaN``. A JSON syntax error is reported by the JSON decoder, with its line.

A registry read from JSON has ``line`` 0 on every check (lines are only
for messages, which the YAML pass makes).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from healthplane.proto.config import check_rules, probe_fields
from healthplane.proto.config.check_fields import READERS, Entry
from healthplane.proto.config.checks import (
    FIELDS_BY_TYPE,
    gc_paused,
    normalize_thresholds,
    read_checks,
    threshold_problem,
    timing_problem,
)
from healthplane.proto.config.model import PROBE_TYPES, Check, Fleet, Registry
from healthplane.proto.config.names import ID_RE
from healthplane.proto.config.version import VersionHash
from healthplane.proto.config.yamlload import SafeNodeLoader, decode_text
from healthplane.proto.config.yamlnodes import BOOL, FLOAT, INT, NULL, STR, Errors
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["read_checks_json"]

_MARK = Mark("", 0, 0, 0, None, None)
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_NO_ITEMS: tuple = ()
_NO_LISTS: dict[str, list] = {}
_ID_TYPE = frozenset({"id", "type"})
_ID_MATCH = ID_RE.fullmatch
_MEMO_LIMIT = 1 << 16            # distinct values remembered per load
_HASH_SLICE = 2048               # checks hashed at a time while reading
_REQUIRED = {kind: frozenset({"id", "type"} | ({"host"} if kind == "dns" else
                                              {"host", "port"} if kind in PROBE_TYPES
                                              else {"children"}))
             for kind in FIELDS_BY_TYPE}
_RESOLVER = SafeNodeLoader("")


class _ExactPass(Exception):
    """Something to report, or a value the YAML path may read otherwise."""


def _duplicate_free(pairs: list[tuple[str, object]]) -> dict[str, object]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise _ExactPass
    return mapping


def _yaml_float(text: str) -> float | str:
    # JSON's 1e3 is text to YAML 1.1; keeping it text makes its reader refuse
    # it, and the YAML pass then reports what that pass sees.
    if _RESOLVER.resolve(ScalarNode, text, (True, False)) == FLOAT:
        return float(text)
    return text


def _constant(text: str) -> str:
    return text          # NaN, Infinity: not JSON, and text to YAML


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


def _fast(data: bytes | bytearray, source: str, fleet: Fleet | None,
          allow_private: bool | None) -> Registry:
    try:
        doc = json.loads(data, object_pairs_hook=_duplicate_free,
                         parse_float=_yaml_float, parse_constant=_constant)
    except UnicodeDecodeError:
        raise _ExactPass from None     # decode_text says where
    del data
    if type(doc) is not dict or "checks" not in doc:
        raise _ExactPass
    if any(key != "checks" and not key.startswith("x-") for key in doc):
        raise _ExactPass
    items = doc.pop("checks")
    del doc
    if type(items) is not list:
        raise _ExactPass
    reader = _EntryReader()
    version = VersionHash()
    done = 0
    for i in range(len(items)):
        item = items[i]
        items[i] = None      # each entry's values are freed as soon as it is read
        reader.add(item)
        if i - done == _HASH_SLICE:
            # Hashed while the new checks are still in the caches; a file
            # with a problem wastes this, but then the YAML pass costs more.
            version.add([e.check for e in reader.entries[done:i]])  # type: ignore[misc]
            done = i
    del items
    entries = reader.entries
    version.add([e.check for e in entries[done:]])  # type: ignore[misc]
    errors = Errors(source)
    check_rules.check_cross_entry(entries, errors, fleet, allow_private)
    if errors:
        raise _ExactPass
    checks = tuple(e.check for e in entries if e.check is not None)
    return Registry(checks=checks, version=version.hexdigest(), source=source)


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


def _memo_key(key: str, value: object) -> tuple | None:
    kind = type(value)
    if kind is list:
        if all(type(v) is str for v in value):  # type: ignore[attr-defined]
            return (key, kind, tuple(value))  # type: ignore[arg-type]
        return None
    if kind is dict:
        return None
    return (key, kind, value)


class _EntryReader:
    """Reads entries into Checks with the YAML path's readers, reusing results."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._memo: dict[tuple, tuple] = {}
        self._scratch = Errors("")

    def _field(self, key: str, value: object, memo_key: tuple | None) -> tuple:
        """(value, host, list items) the reader gives for value.

        host is the host as written, list items (name, [(text, index)]) for
        regions and children; both None for other fields.
        """
        scratch = Entry(check=None, path="")
        read = READERS[key](_node(value), key, self._scratch, scratch)
        if read is None or self._scratch:
            raise _ExactPass
        items = scratch.regions or scratch.children
        known = (read, None if scratch.host is None else scratch.host[0],
                 (key, tuple((t, i) for t, _, i in items)) if items else None)
        if memo_key is not None and len(self._memo) < _MEMO_LIMIT:
            self._memo[memo_key] = known
        return known

    def add(self, item: object) -> None:
        if type(item) is not dict:
            raise _ExactPass
        check_id = item.get("id")
        kind = item.get("type")
        if type(check_id) is not str or type(kind) is not str or kind not in FIELDS_BY_TYPE:
            raise _ExactPass
        if _ID_MATCH(check_id) is None:
            raise _ExactPass
        keys = item.keys()
        if not (keys <= FIELDS_BY_TYPE[kind] and keys >= _REQUIRED[kind]):
            raise _ExactPass  # another type's field, an unknown one, or one missing
        values: dict[str, object] = {"id": check_id, "type": kind}
        host = None
        lists: dict[str, list] = _NO_LISTS
        memo = self._memo
        for key, value in item.items():
            if key in _ID_TYPE:
                continue
            # The type is part of the key: True == 1 == 1.0 as dict keys.
            memo_key: tuple | None = (key, type(value), value)
            try:
                known = memo.get(memo_key)  # type: ignore[arg-type]
            except TypeError:  # a list: its items make the key
                memo_key = _memo_key(key, value)
                known = memo.get(memo_key) if memo_key is not None else None
            if known is None:
                known = self._field(key, value, memo_key)
            values[key], spot, items = known
            if spot is not None:
                host = (spot, 0)
            elif items is not None:
                if lists is _NO_LISTS:
                    lists = {}
                lists[items[0]] = [(text, 0, i) for text, i in items[1]]
        normalize_thresholds(values)
        # item stands for the fields present: the rules ask only about others.
        if kind == "calculated":
            if threshold_problem(values):
                raise _ExactPass
        elif timing_problem(values, item) or probe_fields.entry_problems(kind, values, item):
            raise _ExactPass
        # Entries without list items share one empty tuple: at a million
        # checks, two empty lists each are 100 MB.
        self.entries.append(Entry(
            check=Check(line=0, **values),  # type: ignore[arg-type]
            path="", id=(check_id, 0), host=host,
            regions=lists.get("regions", _NO_ITEMS),  # type: ignore[arg-type]
            children=lists.get("children", _NO_ITEMS)))  # type: ignore[arg-type]
