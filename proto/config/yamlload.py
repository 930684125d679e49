"""Reading config files and composing their YAML: safe, bounded, fast enough.

read_text() reads a file as UTF-8 with one-line errors and the bounds of
healthplane.runtime.files (regular files only, never blocking, size capped); compose() and
compose_stream() turn text into a node tree with one-line errors for YAML
syntax, empty files and a top level that is not a mapping.

Composing itself (nesting bound, streaming, C where it is safe) is
yamlcompose's. load_plain() and dump_plain() are yaml.safe_load and
safe_dump at C speed, for tools that need plain values and no lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.yamlcompose import (
    C_COMPOSER_BOUNDED,
    MAX_DEPTH,
    ItemHook,
    SafeNodeLoader,
    compose_streaming,
    compose_whole,
)
from healthplane.proto.config.yamlnodes import describe, line_of
from yaml.nodes import MappingNode, SequenceNode

from healthplane.runtime.files import MAX_CONFIG_BYTES, UnreadableFile, read_bounded

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "ItemHook", "SafeNodeLoader", "compose",
           "compose_stream", "compose_streaming", "decode_text", "dump_plain", "dump_plain_all",
           "load_plain", "read_bytes", "read_text"]

MAX_FILE_BYTES = MAX_CONFIG_BYTES

# Plain values (no lines) for tools that read or write YAML they made or
# trust: libyaml's loader and dumper where it is there and safe.
_PLAIN_LOADER: type = yaml.CSafeLoader if C_COMPOSER_BOUNDED else yaml.SafeLoader
_PLAIN_DUMPER: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_plain(text: str) -> Any:
    """yaml.safe_load, at C speed where libyaml is there."""
    return yaml.load(text, Loader=_PLAIN_LOADER)  # noqa: S506 - a safe loader


def dump_plain(data: Any, **options: Any) -> str:
    """yaml.safe_dump, at C speed where libyaml is there."""
    return yaml.dump(data, Dumper=_PLAIN_DUMPER, **options)


def dump_plain_all(docs: Any, **options: Any) -> str:
    """yaml.safe_dump_all, at C speed where libyaml is there."""
    return yaml.dump_all(docs, Dumper=_PLAIN_DUMPER, **options)


def read_bytes(path: str | Path) -> tuple[str, bytearray]:
    """A config file's bytes, read with bounds (see healthplane.runtime.files):
    (name for messages, bytes). One-line ConfigError."""
    source = str(path)
    try:
        return source, read_bounded(path, MAX_FILE_BYTES)
    except UnreadableFile as exc:
        raise ConfigError([str(exc)]) from None


def decode_text(data: bytes | bytearray, source: str) -> str:
    """UTF-8 text (a leading BOM dropped), or a one-line ConfigError."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"]
        ) from None


def read_text(path: str | Path) -> tuple[str, str]:
    """Read a config file as UTF-8: (name for messages, text). One-line ConfigError."""
    source, data = read_bytes(path)
    return source, decode_text(data, source)


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
            root = compose_whole(text)
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
