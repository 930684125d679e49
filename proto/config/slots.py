"""Slots dataclass instances made in bulk, without __init__.

A registry of a million checks is a million frozen instances; made the
usual way, each costs a call per field. :func:`build` makes them from
columns at the speed of a plain attribute store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["build", "defaults_of", "maker"]

T = TypeVar("T")


def defaults_of(cls: type) -> dict[str, Any]:
    """Each dataclass field's default (fields without one are left out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def build(cls: type[T], count: int, columns: dict[str, Sequence[Any]]) -> list[T]:
    """count instances of a slots dataclass, each field set from its column.

    The values must already be what __init__ would accept: this skips
    __init__ (and a frozen class's __setattr__). A field without a column
    takes its default, shared by every instance, so a mutable default must
    be given as a column.
    """
    names = tuple(f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                  if f.name in columns)
    defaults = defaults_of(cls)
    constants = [defaults[f.name] for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                 if f.name not in columns]
    make = maker(cls, names)(*constants)
    if not names:
        return [make() for _ in range(count)]
    return list(map(make, *(columns[name] for name in names)))


_MAKERS: dict[tuple[type, tuple[str, ...]], Callable[..., Callable[..., Any]]] = {}


def maker(cls: type, names: tuple[str, ...]) -> Callable[..., Callable[..., Any]]:
    """A factory of functions that make one cls from the values of names,
    the other fields set to the constants the factory is given.

    Writing slots through a frozen class costs a call per field
    (object.__setattr__), about four times the time of the whole object
    otherwise. So each object is made as an instance of a plain twin class
    with the very same slots, whose attribute stores the interpreter does
    in line, and then becomes a cls: a class with the same slot layout may
    take over an instance (assigning __class__), which changes nothing
    else about it.
    """
    made = _MAKERS.get((cls, names))
    if made is not None:
        return made
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
    every = [f.name for f in dataclasses.fields(cls)]
    assert tuple(every) == cls.__slots__, "slots in field order"  # type: ignore[attr-defined]
    others = [name for name in every if name not in names]
    lines = [f"def _factory({', '.join('k_' + n for n in others)}):",
             f"    def make({', '.join(names)}):",
             "        o = _new(_twin)"]
    lines += [f"        o.{n} = {n if n in names else 'k_' + n}" for n in every]
    lines += ["        o.__class__ = _cls", "        return o", "    return make"]
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from field names only
    factory: Callable[..., Callable[..., Any]] = namespace["_factory"]
    _MAKERS[cls, names] = factory
    return factory
