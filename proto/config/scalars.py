"""Typed getters over YAML nodes: each returns the value, or None after
reporting "must be ..., got ..." with the node's line.

YAML types are taken as written: ``"80"`` is a string, ``true`` is not a
number and ``3.0`` is not an integer.
"""

from __future__ import annotations

import math

from healthplane.proto.config.yamlnodes import (
    BOOL,
    FLOAT,
    INT,
    STR,
    Errors,
    describe,
    fmt_num,
    quote,
)
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_SCALARS = SafeConstructor()


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
    if hi is not None:
        return f"{'<' if hi_open else '<='} {fmt_num(hi)}"
    return "a number"
