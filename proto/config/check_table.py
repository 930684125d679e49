"""A registry's checks stored field by field, made into objects only when read.

Checkers and aggregators hold their registry for as long as they run. As
objects, every check costs a 31-slot instance (some 280 bytes) plus its own
strings and numbers, however many fields hold their default: about 1.3 kB
a check, a gigabyte and more for a million. Stored by field, a value every
check shares is kept once, a field of few distinct values (ports, paths,
intervals, flags) takes a byte or two per check, and a field of many
(ids, lines, hosts) is packed: whole numbers and decimals in a numpy array,
text in one string with an offset per check. A registry of the usual shape
then takes a few tens of bytes a check.

:class:`RowTable` is a read-only Sequence of the rows of one slots
dataclass: ``table[i]`` makes that row, iterating makes them a few
thousand at a time (:func:`healthplane.proto.config.slots.maker`), and
:meth:`RowTable.column` gives one field of every row, or of some rows, for
code that needs only a field or two. Every value reads back as it was
given, type included (``10`` stays an int, ``10.0`` a float, ``-0.0``
keeps its sign). Inside a tuple, equal numbers of different types (``(1,)``
and ``(1.0,)``) are one value; the loaders give each field one type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter, index
from typing import Any, Generic, TypeVar, overload

import numpy as np
from healthplane.proto.config.slots import defaults_of, maker

__all__ = ["RowTable"]

T = TypeVar("T")

_CONST, _CODES, _ARRAY, _TEXT, _PLAIN = range(5)
_NUMBERS = frozenset({int, float, bool})
_PACK_AT = 256        # distinct numbers above which a numpy array beats codes
_CHUNK = 4096         # rows made per step when iterating


def _code_dtype(distinct: int) -> type:
    if distinct <= 1 << 8:
        return np.uint8
    return np.uint16 if distinct <= 1 << 16 else np.uint32


def _encode(values: Sequence[Any]) -> tuple:
    """One field's values as the smallest column that gives them back exactly."""
    count = len(values)
    values = list(values)
    try:
        distinct = dict.fromkeys(values)
    except TypeError:          # values no dict key can hold
        return (_PLAIN, tuple(values))
    types = set(map(type, distinct))
    if types & _NUMBERS:
        # Equal numbers of two types (1, 1.0, True) would become one key,
        # and so would 0.0 and -0.0; such a field is kept as given.
        types = set(map(type, values))
        if len(types & _NUMBERS) > 1 or (float in types and 0 in distinct):
            return (_PLAIN, tuple(values))
    if len(distinct) == 1:
        return (_CONST, values[0])
    if len(distinct) > _PACK_AT and types in ({int}, {float}):
        try:
            array = np.array(values, dtype=np.int64 if int in types else np.float64)
            if int in types and -(1 << 31) <= array.min() and array.max() < 1 << 31:
                array = array.astype(np.int32)
            return (_ARRAY, array)
        except OverflowError:
            return (_PLAIN, tuple(values))
    if types == {str} and 2 * len(distinct) > count:
        return _text(values)
    index = dict(zip(distinct, range(len(distinct)), strict=True))
    dtype = _code_dtype(len(distinct))
    codes: np.ndarray = np.fromiter(map(index.__getitem__, values), dtype=dtype, count=count)
    return (_CODES, tuple(distinct), codes)


def _text(values: list[str]) -> tuple:
    """Strings packed in one, a newline between them when none holds one
    (so a whole column comes back with one split)."""
    blob = "\n".join(values)
    gap = 1 if blob.count("\n") == len(values) - 1 else 0
    if not gap:
        blob = "".join(values)
    starts = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)) + gap,
              out=starts[1:])
    if starts[-1] < 1 << 31:
        starts = starts.astype(np.int32)
    return (_TEXT, blob, starts, gap)


class RowTable(Sequence[T], Generic[T]):
    """The rows of cls (a slots dataclass), stored by field.

    RowTable(cls, rows) stores existing rows;
    :meth:`from_columns` stores rows given field by field.
    """

    __slots__ = ("_cls", "_count", "_columns", "_names", "_make")

    def __init__(self, cls: type[T], rows: Iterable[T]) -> None:
        rows = rows if isinstance(rows, (list, tuple)) else list(rows)
        fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        self._setup(cls, len(rows), {name: _encode(list(map(attrgetter(name), rows)))
                                     for name in fields})

    @classmethod
    def from_columns(cls, row_cls: type[T], count: int,
                     columns: Mapping[str, Sequence[Any]]) -> RowTable[T]:
        """count rows, field by field: columns[name][i] is row i's value of
        name, as the row would hold it; a field without a column holds its
        default in every row."""
        defaults = defaults_of(row_cls)
        encoded = {}
        for f in dataclasses.fields(row_cls):  # type: ignore[arg-type]
            column = columns.get(f.name)
            if column is None:
                if f.name not in defaults:
                    raise ValueError(f"no column for {f.name}, which has no default")
                encoded[f.name] = (_CONST, defaults[f.name])
            elif len(column) != count:
                raise ValueError(f"column {f.name} has {len(column)} values, not {count}")
            else:
                encoded[f.name] = _encode(column)
        table: RowTable[T] = cls.__new__(cls)
        table._setup(row_cls, count, encoded)
        return table

    def _setup(self, cls: type[T], count: int, columns: dict[str, tuple]) -> None:
        self._cls = cls
        self._count = count
        self._columns = columns
        if count == 0:
            columns = {name: (_CONST, None) for name in columns}
        names = tuple(name for name, col in columns.items() if col[0] != _CONST)
        constants = [col[1] for col in columns.values() if col[0] == _CONST]
        self._names = names
        self._make: Callable[..., T] = maker(cls, names)(*constants)

    # -- reading ----------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[T, ...]: ...
    def __getitem__(self, i: int | slice) -> T | tuple[T, ...]:
        if isinstance(i, slice):
            return tuple(self.take(np.arange(*i.indices(self._count), dtype=np.int64)))
        i = index(i)
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError("row index out of range")
        return self._make(*(self._value(self._columns[name], i) for name in self._names))

    def __iter__(self) -> Iterator[T]:
        for start in range(0, self._count, _CHUNK):
            yield from self.take(np.arange(start, min(start + _CHUNK, self._count),
                                           dtype=np.int64))

    def take(self, rows: np.ndarray) -> list[T]:
        """The rows at these indices (negative ones count from the end), made
        in one pass per field. IndexError for one out of range."""
        rows = self._rows(rows)
        if not self._names:
            return [self._make() for _ in range(rows.size)]
        return list(map(self._make, *(self.column(name, rows) for name in self._names)))

    def column(self, name: str, rows: np.ndarray | None = None) -> list[Any]:
        """Field name of every row (or of the rows at these indices), in order."""
        col = self._columns[name]
        kind = col[0]
        if rows is not None:
            rows = self._rows(rows)
        count = self._count if rows is None else int(rows.size)
        if kind == _CONST:
            return [col[1]] * count
        if kind == _CODES:
            codes = col[2] if rows is None else col[2][rows]
            return list(map(col[1].__getitem__, codes.tolist()))
        if kind == _ARRAY:
            return (col[1] if rows is None else col[1][rows]).tolist()
        if kind == _TEXT:
            _, blob, starts, gap = col
            if rows is None and gap:
                return blob.split("\n") if count else []
            at = np.arange(count) if rows is None else rows
            return list(map(blob.__getitem__, map(slice, starts[at].tolist(),
                                                  (starts[at + 1] - gap).tolist())))
        values = col[1]
        return list(values) if rows is None else list(map(values.__getitem__, rows.tolist()))

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (int(rows.min()) < -self._count or int(rows.max()) >= self._count):
            raise IndexError("row index out of range")
        return np.where(rows < 0, rows + self._count, rows)

    @staticmethod
    def _value(col: tuple, i: int) -> Any:
        kind = col[0]
        if kind == _CODES:
            return col[1][col[2][i]]
        if kind == _ARRAY:
            return col[1][i].item()
        if kind == _TEXT:
            _, blob, starts, gap = col
            return blob[starts[i]:starts[i + 1] - gap]
        return col[1][i]

    def nbytes(self) -> int:
        """Bytes the columns hold (arrays and packed text; shared values not counted)."""
        total = 0
        for col in self._columns.values():
            if col[0] == _CODES:
                total += col[2].nbytes
            elif col[0] == _ARRAY:
                total += col[1].nbytes
            elif col[0] == _TEXT:
                total += len(col[1]) + col[2].nbytes
            elif col[0] == _PLAIN:
                total += 8 * len(col[1])
        return total

    # -- as a value -------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if not isinstance(other, (RowTable, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        # As the tuple of its rows hashes: the two compare equal.
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"RowTable({self._cls.__name__}, {self._count} rows)"

    def __reduce__(self) -> tuple:
        return (_restore, (self._cls, self._count, self._columns))


def _restore(cls: type[T], count: int, columns: dict[str, tuple]) -> RowTable[T]:
    table: RowTable[T] = RowTable.__new__(RowTable)
    table._setup(cls, count, columns)
    return table
