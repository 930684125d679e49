"""Checks stored by field: every value reads back as given, type and all."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

import numpy as np
import pytest
from healthplane.proto.config.check_table import RowTable
from healthplane.proto.config.model import Check, Registry
from hypothesis import given, settings
from hypothesis import strategies as st


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    value: object = None


def same(a: object, b: object) -> bool:
    """Equal, of the same type, and the same float (sign of zero, NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                     == math.copysign(1, b))
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


values = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
    st.text(max_size=6), st.sampled_from(["a", "b", "a\nb", ""]),
    st.tuples(st.integers(0, 3), st.integers(0, 3)), st.lists(st.integers(0, 2), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=40), st.integers(0, 3))
def test_every_value_reads_back_exactly(column: list, repeat: int) -> None:
    column = column * (repeat + 1)
    rows = [Row(f"k{i}", v) for i, v in enumerate(column)]
    table = RowTable(Row, rows)
    assert len(table) == len(rows)
    assert all(same(a, b) for a, b in zip(table.column("value"), column, strict=True))
    assert all(same(table[i].value, v) for i, v in enumerate(column))
    assert [r.key for r in table] == [r.key for r in rows]
    back = pickle.loads(pickle.dumps(table))
    assert all(same(a, b) for a, b in zip(back.column("value"), column, strict=True))


def test_many_distinct_numbers_and_strings_are_packed() -> None:
    n = 5000
    rows = [Row(f"check-{i}", i * 7) for i in range(n)]
    table = RowTable(Row, rows)
    assert table.nbytes() < 20 * n           # text and an int32 array, not objects
    assert table.column("value") == [i * 7 for i in range(n)]
    assert table[-1] == rows[-1] and table[1234] == rows[1234]
    assert table[10:13] == tuple(rows[10:13])
    assert table.take(np.array([4, 2])) == [rows[4], rows[2]]
    assert table.column("key", np.array([3, 0])) == ["check-3", "check-0"]
    with pytest.raises(IndexError):
        table[n]
    assert table.column("key", np.array([-1, -n])) == [f"check-{n - 1}", "check-0"]
    assert table.take(np.array([-2]))[0] == rows[-2]
    with pytest.raises(IndexError):
        table.column("key", np.array([n]))
    with pytest.raises(IndexError):
        table.take(np.array([-n - 1]))
    with pytest.raises(TypeError):
        table[1.5]  # type: ignore[index]
    assert table != list(rows) and table == tuple(rows)
    assert hash(table) == hash(tuple(rows))


def test_large_ints_and_floats_keep_their_type() -> None:
    big = [2**40 + i for i in range(300)]
    decimals = [i / 3 for i in range(300)]
    assert RowTable(Row, [Row("k", v) for v in big]).column("value") == big
    got = RowTable(Row, [Row("k", v) for v in decimals]).column("value")
    assert got == decimals and all(type(v) is float for v in got)
    mixed = [1, 1.0, True]
    got = RowTable(Row, [Row("k", v) for v in mixed]).column("value")
    assert [type(v) for v in got] == [int, float, bool]


def test_a_registry_stores_its_checks_by_field_and_compares_as_before() -> None:
    checks = tuple(Check(id=f"c{i}", type="http", host="10.0.0.1", port=8000 + i % 5,
                         interval=10.0, timeout=2.0, line=i + 2) for i in range(1000))
    registry = Registry(checks=checks, version="v")
    assert isinstance(registry.checks, RowTable)
    assert registry.checks == checks and tuple(registry.checks) == checks
    assert registry.ids == tuple(c.id for c in checks)
    assert registry.index_of()["c7"] == 7
    assert registry.column("port", [0, 1, 6]) == [8000, 8001, 8001]
    assert registry.checks[5].line == 7
    assert Registry(checks=checks, version="v") == registry
    assert pickle.loads(pickle.dumps(registry)) == registry
    # id text, an offset and a line number per check, a byte of port code.
    assert registry.checks.nbytes() < 24 * len(checks)


def test_from_columns_fills_defaults_and_refuses_short_columns() -> None:
    table = RowTable.from_columns(Check, 3, {"id": ["a", "b", "c"], "type": ["tcp"] * 3,
                                             "port": [1, 2, 3]})
    assert [c.port for c in table] == [1, 2, 3] and table[0].interval == 30.0
    with pytest.raises(ValueError, match="has 2 values, not 3"):
        RowTable.from_columns(Check, 3, {"id": ["a", "b"], "type": ["tcp"] * 3})
    with pytest.raises(ValueError, match="no column for id"):
        RowTable.from_columns(Check, 1, {"type": ["tcp"]})


def test_an_empty_table() -> None:
    table = RowTable(Check, [])
    assert len(table) == 0 and list(table) == [] and table.column("id") == []
    assert Registry(checks=(), version="v").ids == ()
