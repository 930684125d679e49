"""Composing YAML into nodes with marks: safe, bounded in depth, fast.

It composes nodes (with their marks) and never constructs objects, so the
walkers in yamlnodes can point at lines. Three things differ from PyYAML's
stock safe loader:

* Nesting is limited to MAX_DEPTH levels. An old libyaml's own composer
  recurses in C without a limit and crashes the process (SIGSEGV) on a file
  of 100,000 ``[``; libyaml 0.2.5 and later refuse 1,000 levels
  themselves. A whole document (fleet.yaml, zone.yaml) is composed by
  libyaml's C composer where libyaml has that bound, and the tree is then
  checked for MAX_DEPTH; otherwise, and for a streamed registry, by
  PyYAML's Python composer over libyaml's events, which stops at the limit
  with an ordinary error.
* One list can be streamed: its items go to a hook as they are composed
  (see _BoundedComposer), so a large registry is never a whole tree in
  memory. The Python composer composes the plain scalars of a mapping in
  line, the bulk of a registry's nodes.
* Tag resolution is memoised. Resolving a plain scalar's tag runs several
  regular expressions and dominates composing a large registry, where the
  same keys and many of the same values recur in every entry; the safe
  schema's answer depends only on the text and its style.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

__all__ = ["C_COMPOSER_BOUNDED", "MAX_DEPTH", "ItemHook", "SafeNodeLoader", "compose_streaming",
           "compose_whole"]

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Events(CParser):
        """libyaml's parser: events with marks, at C speed."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Events(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)

MAX_DEPTH = 64  # configs need about 5; anything near this is not a config

# Called with (index, node, shared) for each item of a streamed list; shared
# is true when an alias may bring the same node back later in the list.
ItemHook = Callable[[int, Node, bool], None]
_PLACEHOLDER = ScalarNode("tag:yaml.org,2002:null", "")


class _BoundedComposer(Composer):
    """PyYAML's composer with a nesting limit and one streamed list.

    When ``item_hook`` is set, the items of the list under the top-level key
    ``stream_key`` are handed to the hook one by one as they are composed and
    not kept: the list keeps a placeholder per item. A registry of 100,000
    checks is then never a tree of two million nodes in memory at once.
    """

    _depth = 0
    stream_key: str | None = None
    item_hook: ItemHook | None = None
    streamed: SequenceNode | None = None   # the list whose items went to the hook
    _stream_this = False
    _tags: dict[tuple[object, object], str]

    def compose_node(self, parent: Node | None, index: object) -> Node:
        self._depth += 1
        try:
            event = self.peek_event()
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                    event.start_mark)
            if (self._depth == 2 and self.item_hook is not None and self.streamed is None
                    and isinstance(parent, MappingNode) and isinstance(index, ScalarNode)
                    and index.tag == "tag:yaml.org,2002:str" and index.value == self.stream_key
                    and isinstance(event, SequenceStartEvent)):
                self._stream_this = True
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    # Most nodes of a config are plain scalars in a mapping: composed here
    # in line, without the four calls per node of Composer's general path
    # (an anchored scalar, and anything at the depth limit, takes that path).

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(MappingNode, None, start.implicit)
        node = MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        pairs = node.value
        peek, get, tags = self.peek_event, self.get_event, self._tags
        inline = self._depth < MAX_DEPTH
        while True:
            event = peek()
            if type(event) is MappingEndEvent:
                break
            if inline and type(event) is ScalarEvent and event.anchor is None:
                get()
                key = self._plain(event, tags)
            else:
                key = self.compose_node(node, None)
            event = peek()
            if inline and type(event) is ScalarEvent and event.anchor is None:
                get()
                value = self._plain(event, tags)
            else:
                value = self.compose_node(node, key)
            pairs.append((key, value))
        node.end_mark = get().end_mark
        return node

    def _plain(self, event: ScalarEvent, tags: dict[tuple[object, object], str]) -> ScalarNode:
        """The node of a scalar without anchor, composed in line (no events after it)."""
        tag = event.tag
        if tag is None or tag == "!":
            tag = tags.get((event.value, event.implicit)) or \
                self.resolve(ScalarNode, event.value, event.implicit)
        return ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)

    def compose_sequence_node(self, anchor: str | None) -> SequenceNode:
        if not self._stream_this:
            return super().compose_sequence_node(anchor)
        self._stream_this = False
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(SequenceNode, None, start.implicit)
        node = SequenceNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        self.streamed = node
        hook = self.item_hook
        assert hook is not None
        index = 0
        while not self.check_event(SequenceEndEvent):
            event = self.peek_event()
            shared = isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None
            hook(index, self.compose_node(node, index), shared)
            node.value.append(_PLACEHOLDER)
            index += 1
        node.end_mark = self.get_event().end_mark
        return node


class _MemoResolver(Resolver):
    """The safe schema's tags, each plain scalar's worked out once per text."""

    _tags: dict[tuple[object, object], str]

    def resolve(self, kind: type, value: object, implicit: object) -> str:
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
        return tag

    # The safe schema has no path resolvers, so tracking the path is wasted work.
    def descend_resolver(self, current_node: Node | None, current_index: object) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


class SafeNodeLoader(_BoundedComposer, _Events, SafeConstructor, _MemoResolver):
    """Compose-only safe loader: use with ``yaml.compose(text, Loader=SafeNodeLoader)``."""

    def __init__(self, stream: str) -> None:
        _Events.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._tags = {}


def _c_composer_is_bounded() -> bool:
    """Whether libyaml refuses deep nesting itself (it does from 0.2.5 on,
    at 1,000 levels), so that its composer, which recurses in C, cannot
    exhaust the stack: then a whole document is composed in C."""
    if not yaml.__with_libyaml__:
        return False
    try:
        yaml.compose("[" * 2000 + "]" * 2000, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return True
    return False  # pragma: no cover - an old libyaml


C_COMPOSER_BOUNDED = _c_composer_is_bounded()

if C_COMPOSER_BOUNDED:
    class _CNodeLoader(CParser, _MemoResolver):
        """libyaml's parser and composer, the safe schema's tags."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Resolver.__init__(self)
            self._tags = {}

    def compose_whole(text: str) -> Node | None:
        """The node tree of a whole document (None for an empty one)."""
        loader = _CNodeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
        if root is not None:
            _check_depth(root)
        return root
else:  # pragma: no cover - PyYAML without libyaml, or an old libyaml
    def compose_whole(text: str) -> Node | None:
        return yaml.compose(text, Loader=SafeNodeLoader)


def _check_depth(root: Node) -> None:
    """The composer's nesting limit, over a tree composed in C: the first
    node deeper than MAX_DEPTH, in document order, is the error."""
    seen: set[int] = set()
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                node.start_mark)
        if isinstance(node, ScalarNode) or id(node) in seen:
            continue          # an alias brings a node back: looked into once
        seen.add(id(node))
        children = (node.value if isinstance(node, SequenceNode)
                    else [n for pair in node.value for n in pair])
        stack.extend((child, depth + 1) for child in reversed(children))


def compose_streaming(text: str, key: str,
                      hook: ItemHook) -> tuple[Node | None, SequenceNode | None]:
    """Compose text, streaming the items of the top-level list ``key`` to hook.

    Returns the root node and the streamed list (None when there was none:
    the key is missing, not a list, or not at the top level).
    """
    loader = SafeNodeLoader(text)
    loader.stream_key = key
    loader.item_hook = hook
    try:
        return loader.get_single_node(), loader.streamed
    finally:
        loader.dispose()
