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
from itertools import chain, compress, groupby, repeat
from operator import attrgetter, call, ne
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
    """registry_version, fed the checks of a registry in order."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b'{"checks":[')
        self._empty = True

    def add(self, checks: Sequence[Check]) -> None:
        # A chunk at a time, so the columns of a large registry are never
        # all in memory at once.
        for start in range(0, len(checks), _CHUNK):
            part = checks[start:start + _CHUNK]
            self.add_columns({name: list(map(attrgetter(name), part)) for name in _FIELD_NAMES},
                             part)

    def add_columns(self, columns: Mapping[str, Sequence[Any]], checks: Sequence[Check]) -> None:
        """Add checks given field by field too: columns[name][i] is the i-th
        check's value of name (every field but line), as on the Check; a
        field without a column holds its default on every check.

        Checks are encoded a run at a time, a run being checks that set the
        same extension fields (most registries: one run of none), and a
        slice of a run at a time, so a large registry is never one huge
        document in memory.
        """
        count = len(checks)
        used = [name for name in EXTENSION_FIELDS
                if (column := columns.get(name)) is not None
                and column.count(_DEFAULTS[name]) != count]
        runs: Iterable[tuple[tuple[bool, ...], int]] = [((), count)]
        if used:
            sets = zip(*(map(ne, columns[name], repeat(_DEFAULTS[name])) for name in used),
                       strict=True)
            runs = ((key, len(list(run))) for key, run in groupby(sets))
        plans: dict[tuple[bool, ...], tuple[list[_Plan], str]] = {}
        start = 0
        for key, size in runs:
            if key not in plans:
                names = sorted(_BASE_NAMES + tuple(compress(used, key)))
                plans[key] = _plans(names, [columns.get(name) for name in names])
            plan, tail = plans[key]
            for at in range(start, start + size, _SLICE):
                self._update(_encode_slice(plan, tail, at, min(at + _SLICE, start + size)))
            start += size

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
_CHUNK = 32 * _SLICE
_TAIL = ("],\"format\":" + json.dumps(CANONICAL_FORMAT, ensure_ascii=False) + "}").encode("utf-8")
_BASE_NAMES = tuple(n for n in _FIELD_NAMES if n not in EXTENSION_FIELDS)
# Keys are already sorted at every level, so the encoder need not sort them,
# and checks hold no cycles, so it need not look for any.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                           sort_keys=False, check_circular=False).encode


# One JSON object per check, its values filled in column by column: each
# column is read and encoded by C loops (map), which is several times faster
# than building and encoding a dict per check.
# Each value carries its key: ',{"children":[]' opens an object (the first
# comma is cut), ',"disabled":false' continues it, and the last one closes it.
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

# How one column is spelled: its values (None: the default throughout) and
# a table of each distinct value's text with its key, or, for a column
# spelled value by value, its field name and the text before each value.
_Plan = tuple["Sequence[Any]", "dict[Any, str] | tuple[str, str]"]


def _plans(names: Sequence[str],
           columns: Sequence[Sequence[Any] | None]) -> tuple[list[_Plan], str]:
    """How to spell the given columns of some checks (names in sorted
    order), and the text that closes each check.

    Each piece joined is a value with its key; a column with one value
    throughout (most of them, most of the time) is no piece of its own but
    part of the next piece, so far fewer pieces are joined. Worked out
    once for all the checks a loader adds, so each distinct value is
    spelled once.
    """
    plans: list[_Plan] = []
    lead = ""
    for i, (name, values) in enumerate(zip(names, columns, strict=True)):
        key = lead + "," + ("{" if i == 0 else "") + json.dumps(name) + ":"
        if values is None:
            lead = key + _spell(name, [_DEFAULTS[name]], exact=True)[0]  # type: ignore[index]
            continue
        try:
            # A column whose first values are all but distinct (ids) is not
            # worth a table: spelled value by value, it is never hashed.
            sample = values[:_SAMPLE]
            few = len(dict.fromkeys(sample)) * 2 <= len(sample)
            distinct = dict.fromkeys(values) if few else {}
        except TypeError:                # a list, not a tuple
            distinct = {}
        spelled = (_spell(name, list(distinct))
                   if distinct and len(distinct) * _FEW <= len(values) else None)
        if spelled is not None and len(spelled) == 1:
            lead = key + spelled[0]
            continue
        if spelled is not None:
            plans.append((values, {v: key + text
                                   for v, text in zip(distinct, spelled, strict=True)}))
        else:
            plans.append((values, (name, key)))
        lead = ""
    return plans, lead + "}"


def _encode_slice(plans: list[_Plan], tail: str, start: int, stop: int) -> str:
    """The canonical objects of checks start..stop, comma-separated, as
    _ENCODE spells them, as _plans says."""
    pieces: list[Iterable[str]] = []
    for column, how in plans:
        values = column[start:stop]
        if type(how) is tuple:
            name, key = how
            pieces.append(map(key.__add__, _spell(name, values, exact=True)))  # type: ignore[arg-type]
        else:
            pieces.append(map(how.__getitem__, values))
    pieces.append(repeat(tail, stop - start))
    # The pieces of each check in turn, joined in C.
    return "".join(chain.from_iterable(zip(*pieces, strict=True)))[1:]


def _spell(name: str, values: Sequence[Any], exact: bool = False) -> list[str] | None:
    """Each value's canonical JSON; None when distinct values could be
    spelled apart though equal as keys (0.0 and -0.0, 1 and True)."""
    if name in _FLOAT_FIELDS:
        floats = [v if type(v) is float else float(v) for v in values]
        if not all(map(math.isfinite, floats)):
            return list(map(_ENCODE, floats))   # raises as the encoder does
        if not exact and 0.0 in floats:
            return None
        return list(map(float.__repr__, floats))
    if name in _SET_FIELDS:
        return [_ENCODE(sorted(v)) if v else "[]" for v in values]
    types = set(map(type, values))
    if not exact and len(types & _NUMBERS) > 1:
        return None
    if len(types) == 1 and (encode := _SIMPLE.get(next(iter(types)))) is not None:
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
