"""YAML nodes that remember their line: messages, field paths and mappings.

The loaders never turn a file into plain Python objects first: they walk the
composed node tree, so every problem can be reported as
``FILE:LINE: FIELD.PATH: what is wrong``. (checks_json reads valid JSON
registries without a tree, and hands any file with a problem to this path
for its messages.) Only the safe schema's tags are
understood; an explicit tag such as ``!!python/object`` is simply an error,
so nothing in a config file can construct arbitrary objects. Typed getters
are in scalars.py, reading and composing files in yamlload.py.
"""

from __future__ import annotations

import re

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MERGE = "tag:yaml.org,2002:merge"
TIMESTAMP = "tag:yaml.org,2002:timestamp"
_PLAIN_TAGS = frozenset({STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, "tag:yaml.org,2002:seq",
                         "tag:yaml.org,2002:map"})

__all__ = [
    "Errors", "Fields", "MappingNode", "Node", "ScalarNode", "SequenceNode",
    "describe", "fmt_num", "line_of", "quote",
]


_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_QUOTE_LIMIT = 64
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def quote(text: str) -> str:
    """text quoted for a message: escaped onto one line and cut if long."""
    if len(text) > _QUOTE_LIMIT:
        return repr(text[:_QUOTE_LIMIT - 3]) + "..."
    return repr(text)


def line_of(node: Node) -> int:
    """1-based line where node starts."""
    return node.start_mark.line + 1


def fmt_num(value: float | int) -> str:
    """A number as an operator wrote it: 10 rather than 10.0."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


class Errors:
    """Problems found in one file, each kept with its line for ordering."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._items: list[tuple[int, int, str]] = []
        self._seen: set[str] = set()
        # id(mapping node) -> its entries with merges applied; see Fields.
        self.merged: dict[int, dict[str, tuple[Node, Node]]] = {}
        self._strings: dict[str, str] = {}

    def keep(self, text: str) -> str:
        """A string to keep after the node tree is gone: one fresh copy per value.

        The parser's strings sit among the tree's nodes; a config that kept
        them would pin most of the tree's memory after it is freed (about
        800 MB of RSS after loading 100,000 checks). Copies made here share
        memory pages with the loaded config only, and equal values share
        one object.
        """
        kept = self._strings.get(text)
        if kept is None:
            kept = self._strings[text] = (" " + text)[1:]
        return kept

    def add(self, at: Node | int, path: str, message: str) -> None:
        line = at if isinstance(at, int) else line_of(at)
        where = f"{self.source}:{line}: "
        text = f"{where}{path}: {message}" if path else where + message
        # A node reached twice (an alias, a merged mapping) is reported once.
        if text not in self._seen:
            self._seen.add(text)
            self._items.append((line, len(self._items), text))

    def __bool__(self) -> bool:
        return bool(self._items)

    def clear(self) -> None:
        """Forget the problems found so far (a scratch list, tried again)."""
        self._items.clear()
        self._seen.clear()

    def lines(self) -> list[str]:
        """Every message, in line order (ties keep the order they were found)."""
        return [text for _, _, text in sorted(self._items)]


def describe(node: Node) -> str:
    """What a node holds, for "must be X, got Y" messages."""
    if node.tag not in _PLAIN_TAGS:
        tag = node.tag if _PRINTABLE.fullmatch(node.tag) else quote(node.tag)
        return f"a value tagged {tag[:80]}"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    value = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    if node.tag != STR and not _PRINTABLE.fullmatch(value):
        value = repr(value)  # only an explicit tag can put a newline here
    if node.tag == TIMESTAMP:
        return f"date {value}"
    if node.tag == NULL:
        return "nothing (null)"
    if node.tag == BOOL:
        return f"boolean {value}"
    if node.tag == INT:
        return f"integer {value}"
    if node.tag == FLOAT:
        return f"number {value}"
    if node.tag == STR:
        return f"string {value!r}"
    return f"{node.tag} {value!r}"


class Fields:
    """The entries of one YAML mapping by key.

    Keys must be plain strings; a key written twice is reported with the
    line of its first appearance (PyYAML would silently keep the last one).
    YAML merge keys work as in YAML 1.1 (``<<: *defaults``): keys written in
    the mapping win over merged ones, earlier merged mappings over later.
    """

    __slots__ = ("node", "path", "errors", "entries")

    def __init__(self, node: MappingNode, path: str, errors: Errors,
                 _merging: frozenset[int] = frozenset()) -> None:
        self.node = node
        self.path = path
        self.errors = errors
        self.entries: dict[str, tuple[Node, Node]] = {}
        merges: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag == MERGE:
                if merges:
                    errors.add(key, self.sub("<<"), "duplicate key "
                               f"(first at line {line_of(merges[0][0])})")
                else:
                    merges.append((key, value))
                continue
            if not (isinstance(key, ScalarNode) and key.tag == STR):
                errors.add(key, path, f"keys must be strings, got {describe(key)}")
                continue
            first = self.entries.get(key.value)
            if first is not None:
                errors.add(key, self.sub(key.value),
                           f"duplicate key (first at line {line_of(first[0])})")
                continue
            self.entries[key.value] = (key, value)
        for key, value in merges:
            self._merge(key, value, _merging | {id(node)})

    def _merge(self, key: Node, value: Node, merging: frozenset[int]) -> None:
        sources = value.value if isinstance(value, SequenceNode) else [value]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.errors.add(source, self.sub("<<"),
                                f"must be a mapping or a list of mappings, got {describe(source)}")
                continue
            if id(source) in merging:  # <<: *self, directly or through others
                self.errors.add(key, self.sub("<<"), "merges a mapping into itself")
                continue
            # Memoised per node: anchors merged into anchors merged into ...
            # would otherwise cost 2**depth (a "billion laughs" of merges).
            entries = self.errors.merged.get(id(source))
            if entries is None:
                entries = Fields(source, self.path, self.errors, merging).entries
                self.errors.merged[id(source)] = entries
            for name, entry in entries.items():
                self.entries.setdefault(name, entry)

    def sub(self, key: str) -> str:
        """The field path of key inside this mapping."""
        # A key is echoed into the one-line message, so an odd one is quoted.
        if _SIMPLE_KEY.fullmatch(key) is None:
            return f"{self.path}[{quote(key)}]"
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Node | None:
        entry = self.entries.get(key)
        return None if entry is None else entry[1]

    def key_node(self, key: str) -> Node:
        return self.entries[key][0]

    def require(self, key: str) -> Node | None:
        """The value of key, or None after reporting it missing."""
        node = self.get(key)
        if node is None:
            self.errors.add(self.node, self.sub(key), "required")
        return node

    def reject_unknown(self, known: frozenset[str] | set[str], *,
                       extensions: bool = False) -> None:
        """Report keys not in known. With extensions, keys starting with "x-"
        are allowed and ignored (a place for YAML anchors, as in Compose files)."""
        for key, (key_node, _) in self.entries.items():
            if key not in known and not (extensions and key.startswith("x-")):
                self.errors.add(key_node, self.sub(key), "unknown field")
