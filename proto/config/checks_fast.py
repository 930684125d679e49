"""A fast path for large checks.yaml files written in the plain, usual style.

The exact path (checks.read_checks) costs about 120 microseconds of CPU per
check, most of it composing YAML nodes in Python. Most registries, and all
generated ones, are written in a small, regular part of YAML::

    checks:
      - id: web-1            # comments anywhere
        type: http
        host: 192.0.2.10
        port: 8080
        path: "/health"
        regions: [eu-west, us-east]
        children:
          - a
          - b

read_checks_fast() recognises exactly that part, line by line with one
regular expression, and gives up (returns None) on anything else: other
indentation, tabs, non-ASCII text, a lone CR, multi-line or escaped
scalars, flow mappings, anchors, aliases, tags, merge keys, other top-level
keys, or any problem at all with the content. The caller then reads the
file the exact way, which reports every problem with its line, so error
messages come from one place only. A file read here costs about a fifth.

Within that part, every line has one meaning in YAML, and the scalars are
resolved by the same resolver and read by the same field readers
(check_fields.READERS) and entry rules (checks.timing_problem,
threshold_problem, check_rules) as the exact path, so a file read here
gives the Registry the exact path gives. tests/proto/test_config_fast.py
compares the two on every test file, on mutated files and on generated
registries.

Field values repeat across a registry (types, ports, intervals, hosts), so
each distinct value is read once per load and its result reused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from healthplane.proto.config import check_rules
from healthplane.proto.config.check_fields import READERS, Entry
from healthplane.proto.config.checks import (
    FIELDS_BY_TYPE,
    gc_paused,
    threshold_problem,
    timing_problem,
)
from healthplane.proto.config.model import PROBE_TYPES, Check, Fleet, Registry
from healthplane.proto.config.names import is_id
from healthplane.proto.config.version import registry_version
from healthplane.proto.config.yamlload import SafeNodeLoader
from healthplane.proto.config.yamlnodes import STR, Errors
from yaml.error import Mark
from yaml.nodes import ScalarNode, SequenceNode

__all__ = ["read_checks_fast"]

# Printable ASCII and newlines only: no tabs, no CR, no line separators that
# YAML would treat as breaks, no characters the YAML reader refuses.
_OUTSIDE = re.compile(r"[^\x20-\x7e\n]")
# Comment lines and a "---" document start before the content.
_DOC_START = re.compile(r"(?: *+(?:#[^\n]*+)?\n)*---(?: ++#[^\n]*+| *+)(?:\n|\Z)")

_REST = r"[^\s#:,\[\]{}'\"]"   # inside a plain scalar; text is printable ASCII
# A one-line plain scalar: starts with no indicator, never ": ", " #" or a final ":".
_PLAIN = rf"[A-Za-z0-9_./~+]{_REST}*+(?:(?: ++|:++){_REST}++)*+"
_QUOTED = r"\"[^\"\\\n]*+\"|'[^'\n]*+'"           # no escapes, no doubled quotes
_FLOW_ITEM = r"[A-Za-z0-9_./~+][^\s#:,\[\]{}'\"]*+|\"[^\"\\\n,]*+\"|'[^'\n,]*+'"
_FLOW = rf"\[ *+(?:(?:{_FLOW_ITEM})(?: *+, *+(?:{_FLOW_ITEM}))*+)? *+\]"
# Groups: indent, "- ", key, its value (scalar or flow list), a list item.
# A comment needs a space before its "#" unless it starts the line.
_LINE = re.compile(
    rf"^( *+)(- ++)?(?:([A-Za-z_][A-Za-z0-9_]*+):(?: ++({_PLAIN}|{_QUOTED}|{_FLOW}))?"
    rf"|({_PLAIN}|{_QUOTED}))? *+(?:(?<![^ \n])#[^\n]*+)?$", re.M)
_FLOW_SPLIT = re.compile(r" *+, *+")

_CHUNK = 1 << 18                 # characters per regular-expression pass
_MEMO_LIMIT = 1 << 16            # distinct values remembered per load
_MARK = Mark("", 0, 0, 0, None, None)
_SEQ = "tag:yaml.org,2002:seq"
_NO_ITEMS: tuple = ()
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_/")
_REQUIRED = {kind: frozenset({"id", "type"} | ({"host", "port"} if kind in PROBE_TYPES
                                              else {"children"}))
             for kind in FIELDS_BY_TYPE}

# A raw value: scalar text as written, "[...]", or a block list's item texts.
Raw = str | tuple[str, ...]


class _Unhandled(Exception):
    """Not in the plain style, or something to report: use the exact path."""


def read_checks_fast(text: str, source: str, fleet: Fleet | None,
                     allow_private: bool | None) -> Registry | None:
    """The Registry of a valid checks.yaml in the plain style, else None.

    None means "read it the exact way": the file is outside the plain style
    or has at least one problem. Arguments as for checks.read_checks.
    """
    try:
        with gc_paused():
            return _read(text, source, fleet, allow_private)
    except _Unhandled:
        return None


def _read(text: str, source: str, fleet: Fleet | None,
          allow_private: bool | None) -> Registry:
    if "\r" in text:
        # CRLF is one line break to YAML, and the scalars read here are all on
        # one line, so a file saved on Windows means the same with LF.
        text = text.replace("\r\n", "\n")
    if _OUTSIDE.search(text) is not None:
        raise _Unhandled
    start = _DOC_START.match(text)
    pos, line = (start.end(), text.count("\n", 0, start.end())) if start else (0, 0)
    reader = _EntryBuilder()
    in_checks = False
    item_indent = key_indent = -1
    pairs: dict[str, tuple[Raw, int, tuple[int, ...]]] | None = None
    entry_line = 0
    list_key: str | None = None          # a key whose block list is being read
    list_items: list[str] = []
    list_lines: list[int] = []
    list_indent = -1
    key_pad: str | None = None           # the indent of an entry's keys, as text
    for indent_s, dash, key, value, item in _rows(text, pos):
        line += 1
        if value and indent_s == key_pad and not dash and list_key is None:
            # The usual line, "    key: value", checked first.
            if key in pairs:  # type: ignore[operator]
                raise _Unhandled  # a duplicate key
            pairs[key] = (value, line, ())  # type: ignore[index]
            continue
        if list_key is not None:
            indent = len(indent_s)
            if dash and item and indent >= key_indent and list_indent in (-1, indent):
                list_indent = indent
                list_items.append(item)
                list_lines.append(line)
                continue
            if not (dash or key or item):
                continue  # a blank or comment line inside the list
            if not list_items:
                raise _Unhandled  # "key:" with nothing under it is null
            assert pairs is not None
            pairs[list_key] = (tuple(list_items), pairs[list_key][1], tuple(list_lines))
            list_key = None
        if not (dash or key or item):
            continue  # blank or comment
        indent = len(indent_s)
        if not in_checks:
            if indent or dash or key != "checks" or value:
                raise _Unhandled
            in_checks = True
            continue
        if dash and key:
            if item_indent not in (-1, indent):
                raise _Unhandled
            item_indent = indent
            key_indent = indent + len(dash)
            key_pad = " " * key_indent
            if pairs is not None:
                reader.add(pairs, entry_line)
            pairs = {}
            entry_line = line
        elif not key or dash or indent != key_indent or pairs is None:
            raise _Unhandled
        if key in pairs:
            raise _Unhandled  # a duplicate key
        pairs[key] = (value, line, ())
        if not value:
            list_key, list_items, list_lines, list_indent = key, [], [], -1
    if list_key is not None:
        if not list_items:
            raise _Unhandled
        assert pairs is not None
        pairs[list_key] = (tuple(list_items), pairs[list_key][1], tuple(list_lines))
    if pairs is None:
        raise _Unhandled  # no checks key, or an empty list
    reader.add(pairs, entry_line)
    return reader.registry(source, fleet, allow_private)


def _rows(text: str, pos: int) -> Iterator[tuple[str, str, str, str, str]]:
    """The _LINE groups of every line from pos, a chunk at a time."""
    size = len(text)
    while True:
        end = text.find("\n", pos + _CHUNK) if pos + _CHUNK < size else -1
        chunk = text[pos:] if end < 0 else text[pos:end]
        rows = _LINE.findall(chunk)
        # Each match is one whole line, so as many matches as lines means
        # that every line is in the plain style.
        if len(rows) != chunk.count("\n") + 1:
            raise _Unhandled
        yield from rows
        if end < 0:
            return
        pos = end + 1


class _EntryBuilder:
    """Reads entries into Checks with the exact path's readers, reusing results."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._loader = SafeNodeLoader("")   # its resolve() is the exact path's
        self._resolving = frozenset(self._loader.yaml_implicit_resolvers)
        # First characters of plain scalars that no implicit resolver looks
        # at: such a scalar is a string whatever follows.
        self._plain_str = frozenset() if None in self._resolving else _LETTERS - self._resolving
        self._memo: dict[tuple[str, Raw], tuple] = {}
        self._scratch_errors = Errors("")
        self._kinds: dict[str, str] = {}

    def _text(self, raw: Raw) -> str:
        """The value of a scalar the exact path would take as a string."""
        if isinstance(raw, tuple) or raw.startswith("["):
            raise _Unhandled
        tag, value = self._scalar(raw)
        if tag != STR:
            raise _Unhandled
        return value

    def _scalar(self, raw: str) -> tuple[str, str]:
        """(tag, value) of a one-line scalar as written."""
        first = raw[0]
        if first == '"' or first == "'":
            return STR, raw[1:-1]
        if first in self._resolving or None in self._resolving:
            return self._loader.resolve(ScalarNode, raw, (True, False)), raw
        return STR, raw

    def _node(self, raw: Raw) -> ScalarNode | SequenceNode:
        if isinstance(raw, tuple):
            items = list(raw)
        elif raw.startswith("["):
            inner = raw[1:-1].strip(" ")
            items = _FLOW_SPLIT.split(inner) if inner else []
        else:
            return ScalarNode(*self._scalar(raw), _MARK, _MARK)
        return SequenceNode(_SEQ, [ScalarNode(*self._scalar(i), _MARK, _MARK) for i in items],
                            _MARK, _MARK)

    def _field(self, key: str, raw: Raw) -> tuple:
        """(value, host, regions, children) the reader gives for raw, lines aside."""
        scratch = Entry(check=None, path="")
        value = READERS[key](self._node(raw), key, self._scratch_errors, scratch)
        if value is None or self._scratch_errors:
            raise _Unhandled
        known = (value, None if scratch.host is None else scratch.host[0],
                 tuple((t, i) for t, _, i in scratch.regions),
                 tuple((t, i) for t, _, i in scratch.children))
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[key, raw] = known
        return known

    def add(self, pairs: dict[str, tuple[Raw, int, tuple[int, ...]]], line: int) -> None:
        """Read one entry (key -> raw value, its line, list item lines)."""
        if "id" not in pairs or "type" not in pairs:
            raise _Unhandled
        id_raw, id_line, _ = pairs["id"]
        # The exact path's id and type rules: a string; is_id; a known type.
        plain_str = type(id_raw) is str and id_raw[0] in self._plain_str
        check_id = id_raw if plain_str else self._text(id_raw)
        kind = self._kinds.get(pairs["type"][0])  # type: ignore[arg-type]
        if kind is None:
            kind = self._text(pairs["type"][0])
            if kind not in FIELDS_BY_TYPE:
                raise _Unhandled
            self._kinds[pairs["type"][0]] = kind  # type: ignore[index]
        if not is_id(check_id):
            raise _Unhandled
        if not (pairs.keys() <= FIELDS_BY_TYPE[kind] and pairs.keys() >= _REQUIRED[kind]):
            raise _Unhandled  # another type's field, an unknown one, or one missing
        values: dict[str, object] = {"id": check_id, "type": kind}
        host_spot = None
        lists: dict[str, list] = {}
        memo = self._memo
        for key, (raw, at, item_lines) in pairs.items():
            if key == "id" or key == "type":
                continue
            value, host, regions, children = memo.get((key, raw)) or self._field(key, raw)
            values[key] = value
            if host is not None:
                host_spot = (host, at)
            if regions or children:
                for name, items in (("regions", regions), ("children", children)):
                    lists.setdefault(name, []).extend(
                        (text, item_lines[i] if item_lines else at, i) for text, i in items)
        # pairs stands for the fields present: the rules ask only about others.
        if timing_problem(values, pairs) or threshold_problem(values):
            raise _Unhandled
        # A path only names the entry in messages, and this path shows none.
        # Entries without list items share one empty tuple: at a million
        # checks, two empty lists each are 100 MB.
        self.entries.append(Entry(
            check=Check(line=line, **values),  # type: ignore[arg-type]
            path="", id=(check_id, id_line), host=host_spot,
            regions=lists.get("regions", _NO_ITEMS),  # type: ignore[arg-type]
            children=lists.get("children", _NO_ITEMS)))  # type: ignore[arg-type]

    def registry(self, source: str, fleet: Fleet | None,
                 allow_private: bool | None) -> Registry:
        """The cross-entry rules, the same function the exact path runs."""
        entries = self.entries
        errors = Errors(source)
        check_rules.check_cross_entry(entries, errors, fleet, allow_private)
        if errors:
            raise _Unhandled
        checks = tuple(e.check for e in entries if e.check is not None)
        return Registry(checks=checks, version=registry_version(checks), source=source)
