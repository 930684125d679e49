"""A registry read column by column: one field's values across every entry.

A million checks hold a few thousand distinct ports, intervals, paths and
hosts. Reading each field as a column lets every distinct value go through
its field reader once, and every per-entry step (looking a value up,
building the objects) run in C loops (map, zip, dict.fromkeys) instead of
Python statements per field per entry.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any, TypeVar

__all__ = ["ABSENT", "build", "defaults_of", "read_column"]

T = TypeVar("T")


class _Absent:
    """The value of a field an entry does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
_ONE_TYPE = (frozenset({str}), frozenset({int}), frozenset({float}), frozenset({bool}))
_SCALARS = frozenset({str, int, float, bool, type(None), _Absent})


def read_column(raw: list[Any], read: Callable[[Any], T],
                absent: Any = ABSENT) -> tuple[list[T], list[Any]]:
    """(each value read, the distinct values), ABSENT read as absent.

    read is called once per distinct value and raises to refuse one. Values
    are told apart by type too: True == 1 == 1.0 as dict keys, and readers
    treat them differently. Values no dict key can hold (a list inside a
    list) are read one by one, and the distinct values are then [].
    """
    types = set(map(type, raw))
    types.discard(_Absent)
    keys: list[Any]
    if frozenset(types) in _ONE_TYPE or not types:
        keys = raw                     # one type: equal values read alike
        value_of: Callable[[Any], Any] = _same
    elif types <= _SCALARS:
        keys = list(zip(map(type, raw), raw, strict=True))
        value_of = _second
    else:
        keys = [_list_key(v) for v in raw]
        value_of = _list_value
    try:
        distinct = dict.fromkeys(keys)
    except TypeError:
        return [absent if v is ABSENT else read(v) for v in raw], []
    values = []
    for key in distinct:
        value = value_of(key)
        values.append(value)
        distinct[key] = absent if value is ABSENT else read(value)
    return list(map(distinct.__getitem__, keys)), values


def _same(key: Any) -> Any:
    return key


def _second(key: tuple) -> Any:
    return key[1]


def _list_key(value: Any) -> Any:
    if type(value) is list:
        return (list, tuple(value))
    return (type(value), value)


def _list_value(key: tuple) -> Any:
    return list(key[1]) if key[0] is list else key[1]


def defaults_of(cls: type) -> dict[str, Any]:
    """Each dataclass field's default (fields without one are left out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def build(cls: type[T], count: int, columns: dict[str, Sequence[Any] | Iterable[Any]]) -> list[T]:
    """count instances of a slots dataclass, each field set from its column.

    The values must already be what __init__ would accept: this skips
    __init__ (and a frozen class's __setattr__) and writes each slot
    through its descriptor, a C loop per field. A field without a column
    takes its default, shared by every instance, so a mutable default must
    be given as a column.
    """
    objs = list(map(cls.__new__, repeat(cls, count)))  # type: ignore[call-overload]
    defaults = defaults_of(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        column = columns.get(f.name)
        if column is None:
            column = repeat(defaults[f.name], count)
        deque(map(cls.__dict__[f.name].__set__, objs, column), 0)
    return objs
