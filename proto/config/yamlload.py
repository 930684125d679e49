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

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.nodes import Node, ScalarNode
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


class _BoundedComposer(Composer):
    """PyYAML's composer with a nesting limit."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[attr-defined]
                raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                    event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
