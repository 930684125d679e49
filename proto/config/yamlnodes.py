"""YAML read as nodes that remember their line, and typed getters over them.

The loaders never turn a file into plain Python objects first: they walk the
composed node tree, so every problem can be reported as
``FILE:LINE: FIELD.PATH: what is wrong``. Only the safe schema's tags are
understood; an explicit tag such as ``!!python/object`` is simply an error,
so nothing in a config file can construct arbitrary objects.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proto.config.errors import ConfigError
from proto.config.yamlload import ItemHook, SafeNodeLoader, compose_streaming

_SCALARS = SafeConstructor()

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
    "compose", "compose_stream", "read_text", "describe", "fmt_num", "as_str", "as_int",
    "as_number", "as_bool", "as_list", "as_mapping", "line_of", "quote",
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

    def lines(self) -> list[str]:
        """Every message, in line order (ties keep the order they were found)."""
        return [text for _, _, text in sorted(self._items)]


def read_text(path: str | Path) -> tuple[str, str]:
    """Read a config file as UTF-8: (name for messages, text). One-line ConfigError."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ConfigError([f"{source}: cannot read: is a directory"]) from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise ConfigError([f"{source}: cannot read: {reason}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"]
        ) from None
    return source, text


def compose(text: str, source: str) -> MappingNode:
    """Parse text into a node tree whose top level is a mapping.

    Raises a one-line ConfigError for YAML syntax errors, an empty document,
    several documents, or a top level that is not a mapping.
    """
    return compose_stream(text, source, None, None)[0]


def compose_stream(text: str, source: str, key: str | None,
                   hook: ItemHook | None) -> tuple[MappingNode, SequenceNode | None]:
    """compose(), but the items of the top-level list under key go to hook as
    they are read instead of into the tree (see yamlload). Returns the root
    and the list whose items were streamed, if there was one."""
    streamed = None
    try:
        if key is None or hook is None:
            root = yaml.compose(text, Loader=SafeNodeLoader)
        else:
            root, streamed = compose_streaming(text, key, hook)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and "expected a single document" in exc.context:
            problem = "expected a single YAML document, found several"
        elif exc.context and exc.problem:
            # The context says where the unfinished construct began, which is
            # often the line that needs fixing (an unclosed bracket).
            started = exc.context_mark
            since = (f" started at line {started.line + 1}"
                     if started is not None and mark is not None and started.line != mark.line
                     else "")
            problem = f"{problem} ({exc.context}{since})"
        raise ConfigError([f"{source}{line}: YAML syntax error: {problem}"]) from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader rejects
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ConfigError([f"{source}: YAML syntax error: {first}"]) from None
    if root is None:
        raise ConfigError([f"{source}: file is empty"])
    if not isinstance(root, MappingNode):
        raise ConfigError(
            [f"{source}:{line_of(root)}: top level must be a mapping, got {describe(root)}"])
    return root, streamed


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


def as_mapping(node: Node, path: str, errors: Errors) -> MappingNode | None:
    if isinstance(node, MappingNode):
        return node
    errors.add(node, path, f"must be a mapping, got {describe(node)}")
    return None


def as_list(node: Node, path: str, errors: Errors) -> list[Node] | None:
    if isinstance(node, SequenceNode):
        return list(node.value)
    errors.add(node, path, f"must be a list, got {describe(node)}")
    return None


def as_str(node: Node, path: str, errors: Errors) -> str | None:
    if isinstance(node, ScalarNode) and node.tag == STR:
        return errors.keep(node.value)
    errors.add(node, path, f"must be a string, got {describe(node)}")
    return None


def _convert(node: ScalarNode) -> bool | int | float:
    """The value of a bool, int or float scalar.

    Raises ValueError for text the tag cannot hold, which only an explicit
    tag can produce (``!!int abc``), and for absurdly long numbers.
    """
    text = node.value
    if len(text) > 100:
        raise ValueError("too long")
    try:
        if node.tag == INT:
            # The fast path covers what people write; the constructor the rest
            # of YAML 1.1 (0x1F, 0o17, 1_000, 1:30).
            if text.isascii() and text.isdigit():
                return int(text)
            return int(_SCALARS.construct_yaml_int(node))
        if node.tag == FLOAT:
            return float(_SCALARS.construct_yaml_float(node))
        return bool(_SCALARS.construct_yaml_bool(node))
    except (ValueError, KeyError, TypeError, OverflowError):
        raise ValueError("not a valid value for its tag") from None


def _invalid(node: Node, path: str, errors: Errors, what: str, *, tag_ok: bool) -> None:
    if tag_ok and isinstance(node, ScalarNode):  # !!int abc, or 5,000 digits
        errors.add(node, path, f"must be {what} (got {quote(node.value)})")
    else:
        errors.add(node, path, f"must be {what}, got {describe(node)}")


def as_bool(node: Node, path: str, errors: Errors) -> bool | None:
    if isinstance(node, ScalarNode) and node.tag == BOOL:
        try:
            return bool(_convert(node))
        except ValueError:
            pass
    _invalid(node, path, errors, "true or false", tag_ok=node.tag == BOOL)
    return None


def as_int(node: Node, path: str, errors: Errors,
           lo: int | None = None, hi: int | None = None) -> int | None:
    """An integer in lo..hi. YAML booleans and 3.0 are not integers."""
    value: int | None = None
    if isinstance(node, ScalarNode) and node.tag == INT:
        try:
            value = int(_convert(node))
        except ValueError:
            value = None
    if value is None:
        _invalid(node, path, errors, "an integer", tag_ok=node.tag == INT)
        return None
    if not _in_range(value, lo, hi):
        errors.add(node, path, f"must be {_range_text(lo, hi)} (got {value})")
        return None
    return value


def as_number(node: Node, path: str, errors: Errors, lo: float | None = None,
              hi: float | None = None, *, lo_open: bool = False,
              hi_open: bool = False) -> float | None:
    """A finite number (integer or decimal) within the bounds; a bound is
    exclusive when its *_open flag is set."""
    value: float | None = None
    if isinstance(node, ScalarNode) and node.tag in (INT, FLOAT):
        try:
            value = float(_convert(node))
        except (ValueError, OverflowError):
            value = None
    if value is None:
        _invalid(node, path, errors, "a number", tag_ok=node.tag in (INT, FLOAT))
        return None
    if not math.isfinite(value):
        errors.add(node, path, f"must be a finite number (got {node.value})")
        return None
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        errors.add(node, path, f"must be {_bounds_text(lo, hi, lo_open, hi_open)} "
                               f"(got {fmt_num(value)})")
        return None
    return value


def _in_range(value: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _range_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    if lo is not None:
        return f">= {lo}"
    return f"<= {hi}"


def _bounds_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        if not lo_open and not hi_open:
            return f"{fmt_num(lo)}..{fmt_num(hi)}"
        return (f"{'>' if lo_open else '>='} {fmt_num(lo)} and "
                f"{'<' if hi_open else '<='} {fmt_num(hi)}")
    if lo is not None:
        return f"{'>' if lo_open else '>='} {fmt_num(lo)}"
    return f"{'<' if hi_open else '<='} {fmt_num(hi)}"


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
