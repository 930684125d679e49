"""Registry identity: a version that is a hash of what the checks mean.

Snapshots carry the version so that a process never reads one registry's bit
positions with another's. Two files that mean the same checks in the same
order get the same version whatever their key order, comments, whitespace,
quoting, or whether a default is written out or left implicit; anything that
changes behaviour, including the order of the checks (it is their index),
changes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from itertools import chain, repeat
from operator import attrgetter, call
from typing import Any

from healthplane.proto.config.model import Check, Registry

# Bump when the canonical form changes meaning, so old and new never collide.
CANONICAL_FORMAT = "healthplane.checks/1"
VERSION_HEX_CHARS = 16

_FLOAT_FIELDS = frozenset({"interval", "timeout"})
# Order inside these lists carries no meaning (membership does).
_SET_FIELDS = frozenset({"regions", "children"})
_FIELD_NAMES = tuple(f.name for f in fields(Check) if f.name != "line")
# Fields added after the canonical format was fixed: left out while they
# hold their default, so a registry that uses none of them keeps the version
# it had before they existed, and processes of both releases agree on it
# during a rolling upgrade.
EXTENSION_FIELDS = ("method", "headers", "expected_status", "send", "expect", "ip_family",
                    "tls", "query_name", "query_type", "expect_rcode",
                    "success_threshold", "min_votes", "min_regions")
_DEFAULTS = {f.name: f.default for f in fields(Check)}


def canonical_check(check: Check) -> dict[str, Any]:
    """The check with every field present (extension fields only when not at their
    default) and each value in one spelling."""
    out: dict[str, Any] = {}
    for name in _FIELD_NAMES:
        value = getattr(check, name)
        if name in _FLOAT_FIELDS:
            value = float(value)
        elif name in _SET_FIELDS:
            value = sorted(value)
        elif name in EXTENSION_FIELDS and value == _DEFAULTS[name]:
            continue
        out[name] = value
    return out


def registry_version(checks: Iterable[Check]) -> str:
    """16 hex chars of sha256 over the canonical JSON of the checks, in order.

    The JSON is ``json.dumps(doc, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)`` of ``{"format": CANONICAL_FORMAT,
    "checks": [canonical_check(c) ...]}`` (see canonical_json). It is built
    here column by column and hashed in slices, which gives the same bytes
    faster and without the whole document in memory: a million-check
    registry is hashed at every load.
    """
    version = VersionHash()
    version.add(tuple(checks))
    return version.hexdigest()


class VersionHash:
    """registry_version, fed a few checks at a time as they are built.

    A loader that adds each slice of checks right after building it
    encodes them while they are still in the CPU's caches.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b'{"checks":[')
        self._empty = True

    def add(self, checks: Sequence[Check]) -> None:
        # In slices, so a large registry is never one huge document in memory.
        for start in range(0, len(checks), _SLICE):
            part = checks[start:start + _SLICE]
            if list(map(_GET_EXT, part)).count(_EXT_DEFAULTS) != len(part):
                self._update(_spelled_out(part))
            else:
                self._update(_encode_columns([list(map(get, part)) for get in _GETTERS]))

    def add_columns(self, columns: Mapping[str, Sequence[Any]], checks: Sequence[Check]) -> None:
        """Add checks given field by field too: columns[name][i] is the i-th
        check's value of name (every field but line), as on the Check; a
        field without a column holds its default on every check."""
        ordered = [columns.get(name) for name in _SORTED_NAMES]
        plans, tail = _plans(ordered, _SORTED_DEFAULTS)
        # Only the extension fields some check sets need looking at per slice.
        extensions = [(column, _DEFAULTS[name]) for name in EXTENSION_FIELDS
                      if (column := columns.get(name)) is not None
                      and column.count(_DEFAULTS[name]) != len(checks)]
        for start in range(0, len(checks), _SLICE):
            stop = min(start + _SLICE, len(checks))
            if any(column[start:stop].count(default) != stop - start
                   for column, default in extensions):
                self._update(_spelled_out(checks[start:stop]))
            else:
                self._update(_encode_slice(plans, tail, ordered, start, stop))

    def _update(self, encoded: str) -> None:
        if not self._empty:
            self._digest.update(b",")
        self._empty = False
        self._digest.update(encoded.encode("utf-8"))

    def hexdigest(self) -> str:
        digest = self._digest.copy()
        digest.update(_TAIL)
        return digest.hexdigest()[:VERSION_HEX_CHARS]


def canonical_json(checks: Iterable[Check]) -> str:
    """The canonical document registry_version hashes, in its plainest form."""
    doc = {"format": CANONICAL_FORMAT, "checks": [canonical_check(c) for c in checks]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


_SLICE = 2048
_TAIL = ("],\"format\":" + json.dumps(CANONICAL_FORMAT, ensure_ascii=False) + "}").encode("utf-8")
_SORTED_NAMES = tuple(sorted(n for n in _FIELD_NAMES if n not in EXTENSION_FIELDS))
_SORTED_DEFAULTS = tuple(_DEFAULTS[name] for name in _SORTED_NAMES)
_GET_EXT = attrgetter(*EXTENSION_FIELDS)
_EXT_DEFAULTS = tuple(_DEFAULTS[n] for n in EXTENSION_FIELDS)
_GET_SORTED = attrgetter(*_SORTED_NAMES)
_FLOAT_AT = tuple(i for i, name in enumerate(_SORTED_NAMES) if name in _FLOAT_FIELDS)
_SET_AT = tuple(i for i, name in enumerate(_SORTED_NAMES) if name in _SET_FIELDS)
# Keys are already sorted at every level, so the encoder need not sort them,
# and checks hold no cycles, so it need not look for any.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                           sort_keys=False, check_circular=False).encode


# One JSON object per check, its values filled in column by column: each
# column is read and encoded by C loops (map), which is several times faster
# than building and encoding a dict per check.
# Each value carries its key: ',{"children":[]' opens an object (the first
# comma is cut), ',"disabled":false' continues it, and the last one closes it.
_KEYS = tuple(("{" if i == 0 else "") + json.dumps(name) + ":"
              for i, name in enumerate(_SORTED_NAMES))
_GETTERS = tuple(attrgetter(name) for name in _SORTED_NAMES)
_ENCODE_STR = json.encoder.encode_basestring  # what the encoder uses without ensure_ascii
_BOOLS = {True: "true", False: "false"}
_SIMPLE: dict[type, Callable[[Any], str]] = {
    str: _ENCODE_STR, int: int.__repr__, bool: _BOOLS.__getitem__,
    type(None): lambda _: "null",
}
# A column with at most this share of distinct values is spelled once per
# value and looked up (intervals, ports, hosts, paths, region lists).
_FEW = 4
_SAMPLE = 4096
_NUMBERS = frozenset({int, float, bool})


def _spelled_out(checks: Sequence[Check]) -> str:
    """The canonical objects of checks one by one: for a slice where a check
    uses an extension field, so that objects differ in their keys."""
    return ",".join(_ENCODE(dict(sorted(canonical_check(c).items()))) for c in checks)


def _encode_columns(columns: list[Sequence[Any]]) -> str:
    """The canonical objects of some checks, comma-separated, as _ENCODE
    spells them; columns holds their values of each field in _SORTED_NAMES."""
    plans, tail = _plans(columns, [None] * len(columns))
    return _encode_slice(plans, tail, columns, 0, len(columns[0]))


# How one column is spelled: (its position, a table of each distinct
# value's text, or, for a column spelled value by value, the text before
# each value).
_Plan = tuple[int, "dict[Any, str] | str"]


def _plans(columns: Sequence[Sequence[Any] | None],
           defaults: Sequence[Any]) -> tuple[list[_Plan], str]:
    """How to spell each column of some checks, and the text that closes each.

    Each piece joined is a value with its key; a column with one value
    throughout (most of them, most of the time) is no piece of its own but
    part of the next piece, so far fewer pieces are joined. A column of
    None holds its default throughout. Worked out once for all the checks
    a loader adds, so each distinct value is spelled once.
    """
    plans: list[_Plan] = []
    lead = ""
    for at, values in enumerate(columns):
        key = lead + "," + _KEYS[at]
        if values is None:
            lead = key + _spell(at, [defaults[at]], exact=True)[0]  # type: ignore[index]
            continue
        try:
            # A column whose first values are all but distinct (ids) is not
            # worth a table: spelled value by value, it is never hashed.
            sample = values[:_SAMPLE]
            few = len(dict.fromkeys(sample)) * 2 <= len(sample)
            distinct = dict.fromkeys(values) if few else {}
        except TypeError:                # a list, not a tuple
            distinct = {}
        spelled = (_spell(at, list(distinct))
                   if distinct and len(distinct) * _FEW <= len(values) else None)
        if spelled is not None and len(spelled) == 1:
            lead = key + spelled[0]
            continue
        if spelled is not None:
            plans.append((at, {v: key + text for v, text in zip(distinct, spelled, strict=True)}))
        else:
            plans.append((at, key))
        lead = ""
    return plans, lead + "}"


def _encode_slice(plans: list[_Plan], tail: str, columns: Sequence[Sequence[Any] | None],
                  start: int, stop: int) -> str:
    """The canonical objects of checks start..stop, as _plans says."""
    pieces: list[Iterable[str]] = []
    for at, how in plans:
        values = columns[at][start:stop]  # type: ignore[index]
        if type(how) is str:
            pieces.append(map(how.__add__, _spell(at, values, exact=True)))  # type: ignore[arg-type]
        else:
            pieces.append(map(how.__getitem__, values))
    pieces.append(repeat(tail, stop - start))
    # The pieces of each check in turn, joined in C.
    return "".join(chain.from_iterable(zip(*pieces, strict=True)))[1:]


def _spell(at: int, values: Sequence[Any], exact: bool = False) -> list[str] | None:
    """Each value's canonical JSON; None when distinct values could be
    spelled apart though equal as keys (0.0 and -0.0, 1 and True)."""
    if at in _FLOAT_AT:
        floats = [v if type(v) is float else float(v) for v in values]
        if not all(map(math.isfinite, floats)):
            return list(map(_ENCODE, floats))   # raises as the encoder does
        if not exact and 0.0 in floats:
            return None
        return list(map(float.__repr__, floats))
    if at in _SET_AT:
        return [_ENCODE(sorted(v)) if v else "[]" for v in values]
    types = set(map(type, values))
    if not exact and len(types & _NUMBERS) > 1:
        return None
    if len(types) == 1 and (encode := _SIMPLE.get(types.pop())) is not None:
        return list(map(encode, values))
    if types <= _SIMPLE.keys():
        return list(map(call, map(_SIMPLE.__getitem__, map(type, values)), values))
    return [_SIMPLE.get(type(v), _ENCODE)(v) for v in values]


def make_registry(checks: Iterable[Check], source: str = "") -> Registry:
    """A Registry of already valid checks with its version computed.

    For code and tests that build checks directly instead of loading a file.
    """
    checks = tuple(checks)
    return Registry(checks=checks, version=registry_version(checks), source=source)
