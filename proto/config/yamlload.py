"""The YAML loader behind the config files: safe, bounded, and fast enough.

It composes nodes (with their marks) and never constructs objects, so the
walkers in yamlnodes can point at lines. Two things differ from PyYAML's
stock safe loader:

* Nesting is limited to MAX_DEPTH levels. libyaml's own composer recurses in
  C and crashes the process (SIGSEGV) on a file of 100,000 ``[``; composing
  here is PyYAML's Python composer over libyaml's events, which is about as
  fast, and it stops at the limit with an ordinary error.
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
from yaml.events import AliasEvent, SequenceEndEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

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

    def compose_node(self, parent: Node | None, index: object) -> Node:
        self._depth += 1
        try:
            event = self.peek_event()  # type: ignore[attr-defined]
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

    def compose_sequence_node(self, anchor: str | None) -> SequenceNode:
        if not self._stream_this:
            return super().compose_sequence_node(anchor)
        self._stream_this = False
        start = self.get_event()  # type: ignore[attr-defined]
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(SequenceNode, None, start.implicit)  # type: ignore[attr-defined]
        node = SequenceNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        self.streamed = node
        hook = self.item_hook
        assert hook is not None
        index = 0
        while not self.check_event(SequenceEndEvent):  # type: ignore[attr-defined]
            event = self.peek_event()  # type: ignore[attr-defined]
            shared = isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None
            hook(index, self.compose_node(node, index), shared)
            node.value.append(_PLACEHOLDER)
            index += 1
        node.end_mark = self.get_event().end_mark  # type: ignore[attr-defined]
        return node


class SafeNodeLoader(_BoundedComposer, _Events, SafeConstructor, Resolver):  # type: ignore[misc]
    """Compose-only safe loader: use with ``yaml.compose(text, Loader=SafeNodeLoader)``."""

    def __init__(self, stream: str) -> None:
        _Events.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._tags: dict[tuple[object, object], str] = {}

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
