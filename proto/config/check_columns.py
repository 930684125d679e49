"""A registry read column by column: one field's values across every entry.

A million checks hold a few thousand distinct ports, intervals, paths and
hosts. Reading each field as a column lets every distinct value go through
its field reader once, and every per-entry step (looking a value up,
building the objects) run in C loops (map, zip, dict.fromkeys) instead of
Python statements per field per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress, repeat
from operator import is_not
from typing import Any, TypeVar, overload

from healthplane.proto.config.check_fields import Entry, Item, Spot
from healthplane.proto.config.slots import build, defaults_of

__all__ = ["ABSENT", "EntryColumns", "build", "defaults_of", "fill_absent", "read_column"]

T = TypeVar("T")


class _Absent:
    """The value of a field an entry does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
_NUMBERS = frozenset({int, float, bool})
_SCALARS = frozenset({str, int, float, bool, type(None), _Absent})
# Types whose equal values are interchangeable (unlike 0.0 and -0.0).
_PLAIN = frozenset({str, int, bool})
_SPARSE = 3          # a field on fewer than a third of the entries: read those only


def read_column(raw: list[Any], read: Callable[[Any], T],
                absent: Any = ABSENT) -> tuple[list[T], list[Any], int]:
    """(each value read, absent where ABSENT; the distinct values; how many
    entries have one).

    read is called once per distinct value and raises to refuse one. Values
    are told apart by type too: True == 1 == 1.0 as dict keys, and readers
    treat them differently. Values no dict key can hold (a list inside a
    list) are read one by one, and the distinct values are then [].
    """
    count = len(raw)
    present = count - raw.count(ABSENT)
    if present * _SPARSE >= count:
        column, distinct = _read(raw, read, absent)
        return column, distinct, present
    column = [absent] * count
    if present:
        mask = list(map(is_not, raw, repeat(ABSENT)))
        values, distinct = _read(list(compress(raw, mask)), read, absent)
        for i, value in zip(compress(range(count), mask), values, strict=True):
            column[i] = value
        return column, distinct, present
    return column, [], 0


def _read(raw: list[Any], read: Callable[[Any], T], absent: Any) -> tuple[list[T], list[Any]]:
    keys: list[Any] = raw
    value_of: Callable[[Any], Any] = _same
    merged = False
    try:
        distinct = dict.fromkeys(raw)
        # Only numbers of two types can be equal; with none among the
        # distinct values there are none at all.
        if set(map(type, distinct)) & _NUMBERS:
            numbers = set(map(type, raw)) & _NUMBERS
            if len(numbers) > 1:
                merged = _reads_alike(distinct, numbers, read)
                if not merged:
                    keys = list(zip(map(type, raw), raw, strict=True))
                    value_of = _second
                    distinct = dict.fromkeys(keys)
    except TypeError:                  # lists
        if set(map(type, raw)) == {list}:
            keys = list(map(tuple, raw))
            value_of = list
        else:
            keys = [_list_key(v) for v in raw]
            value_of = _list_value
        try:
            distinct = dict.fromkeys(keys)
        except TypeError:              # something inside no key can hold
            return [absent if v is ABSENT else read(v) for v in raw], []
    values = []
    outcome: dict[Any, Any] = {}
    same = value_of is _same and not merged
    for key in distinct:
        value = value_of(key)
        if value is ABSENT:
            outcome[key] = got = absent
        else:
            values.append(value)
            outcome[key] = got = read(value)
        same = same and (got is key or (type(got) is type(key) and type(key) in _PLAIN
                                        and got == key))
    if same:
        return raw, values             # every value read as itself: no lookups needed
    return list(map(outcome.__getitem__, keys)), values


def _reads_alike(distinct: dict[Any, None], numbers: set[type],
                 read: Callable[[Any], Any]) -> bool:
    """Whether each distinct value reads the same in every type of numbers
    it could be written in (interval: 10 and 10.0), so that telling
    them apart is not needed. Zero is left to the exact path: -0.0 == 0."""
    if 0 in distinct:
        return False
    for value in distinct:
        if type(value) not in _NUMBERS:
            continue
        variants = [kind(value) for kind in numbers]
        try:
            got = [read(v) for v in variants if v == value]
        except Exception:   # a refusal: the exact path decides  # noqa: BLE001
            return False
        first = got[0]
        if any(type(g) is not type(first) or g != first or repr(g) != repr(first)
               for g in got):
            return False
    return True


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


def fill_absent(values: list, default: object) -> list:
    """values with default in place of ABSENT, found by C loops: the
    few holes of a common field by index(), the few values of a rare one
    by compress()."""
    holes = values.count(ABSENT)
    if not holes:
        return values
    if holes * 2 <= len(values):
        values = list(values)
        at = -1
        for _ in range(holes):
            at = values.index(ABSENT, at + 1)
            values[at] = default
        return values
    out = [default] * len(values)
    for at in compress(range(len(values)), map(is_not, values, repeat(ABSENT))):
        out[at] = values[at]
    return out




class EntryColumns(Sequence[Entry]):
    """A registry's entries as columns, for the cross-entry rules
    (check_rules), from a reader that has no lines to give: an Entry is
    only made for an entry a rule looks at one by one, which on a valid
    registry is almost none.

    ids: each check's id; hosts: (host as written, 0) or None; regions and
    children: each entry's items, (text, 0, index).
    """

    def __init__(self, ids: list[str], hosts: Sequence[Spot | None],
                 regions: Sequence[tuple[Item, ...]], children: Sequence[tuple[Item, ...]]) -> None:
        self.ids = ids
        self.columns: dict[str, Sequence[Any]] = {
            "host": hosts, "regions": regions, "children": children}

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Entry: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Entry]: ...
    def __getitem__(self, i: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        columns = self.columns
        return Entry(check=None, path=f"checks[{i}]", id=(self.ids[i], 0),
                     host=columns["host"][i], regions=list(columns["regions"][i]),
                     children=list(columns["children"][i]))
