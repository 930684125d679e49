"""checks.json decoded into one small object per entry, the shapes checked in C.

Each check type gets a msgspec Struct with exactly that type's fields
(checks.FIELDS_BY_TYPE), tagged by ``type``: the decoder itself refuses an
unknown type, a field of another type or none at all, and a required field
left out, and stores the entries far more compactly than dicts. Every
field is typed ``Any``: its value is judged by the field readers, as YAML's
is. A field an entry leaves out, and a field its type does not have, read
as ABSENT.

Anything the decoder refuses is a problem the YAML pass will report (or,
for text msgspec reads otherwise than the standard library, goes to the
standard library first). See checks_json for why colons are counted.
"""

from __future__ import annotations

import json
from operator import attrgetter
from typing import Any, Union

import msgspec
from healthplane.proto.config.check_columns import ABSENT
from healthplane.proto.config.checks import _REQUIRED, FIELDS_BY_TYPE, KNOWN_FIELDS
from healthplane.proto.config.yamlload import SafeNodeLoader
from healthplane.proto.config.yamlnodes import FLOAT
from yaml.nodes import ScalarNode

__all__ = ["ENTRY_FIELDS", "Refused", "column", "decode"]

# The same required fields as the YAML path's (a dns check's port defaults to 53).
REQUIRED = {kind: frozenset({"id", *_REQUIRED.get(kind, ("host", "port"))})
            for kind in FIELDS_BY_TYPE}
ENTRY_FIELDS = tuple(sorted(KNOWN_FIELDS - {"type"}))
_RESOLVER = SafeNodeLoader("")


class Refused(Exception):
    """Something to report, or a value the YAML path may read otherwise."""


def _entry_type(kind: str, fields: frozenset[str]) -> type:
    mine = fields - {"type"}
    spec: list[Any] = [(f, Any) for f in sorted(REQUIRED[kind])]
    spec += [(f, Any, ABSENT) for f in sorted(mine - REQUIRED[kind])]
    # Another type's fields read as ABSENT too, so every column has a value
    # on every entry; "type" reads as the tag.
    namespace: dict[str, Any] = {f: ABSENT for f in ENTRY_FIELDS if f not in mine}
    namespace["type"] = kind
    return msgspec.defstruct(f"{kind}_entry", spec, tag_field="type", tag=kind,
                             forbid_unknown_fields=True, gc=False, namespace=namespace)


_ENTRY = Union[tuple(_entry_type(k, f) for k, f in FIELDS_BY_TYPE.items())]  # type: ignore[valid-type]  # noqa: UP007
_ENTRIES = list[_ENTRY]  # type: ignore[valid-type]
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])


def yaml_float(text: str) -> float | str:
    """A JSON float literal as YAML 1.1 reads it: 1e3 is text there, and
    kept as text its field's reader refuses it, as YAML's does."""
    if _RESOLVER.resolve(ScalarNode, text, (True, False)) == FLOAT:
        return float(text)
    return text


class _Floats(dict[str, Any]):
    """Each float literal's value, worked out once per spelling."""

    def __missing__(self, text: str) -> float | str:
        value = self[text] = yaml_float(text)
        return value


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise Refused
    return mapping


def _constant(text: str) -> str:
    return text          # NaN, Infinity: not JSON, and text to YAML


def decode(data: bytes | bytearray) -> tuple[list, dict[str, Any], int | None]:
    """(entries, the document's other keys, colons in the text or None).

    The colons are None when the standard library decoded the text, whose
    hook saw every object's keys; otherwise the caller must find the
    text's colons all accounted for (see checks_json).
    """
    if data.find(b"\\") == -1:   # no escapes: strings decode to their text
        try:
            doc = _TOP.decode(data)
            rest = {key: msgspec.json.decode(value) for key, value in doc.items()
                    if key != "checks"}
            raw = doc.get("checks")
            if raw is None:
                raise Refused
            decoder = msgspec.json.Decoder(_ENTRIES, float_hook=_Floats().__getitem__)
            return decoder.decode(raw), rest, data.count(b":")
        except msgspec.ValidationError:
            raise Refused from None
        except msgspec.DecodeError:
            pass                 # the standard library says where, or reads it
    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates,
                         parse_float=yaml_float, parse_constant=_constant)
    except UnicodeDecodeError:
        raise Refused from None  # decode_text says where
    if type(doc) is not dict or "checks" not in doc:
        raise Refused
    try:
        entries = msgspec.convert(doc.pop("checks"), _ENTRIES)
    except msgspec.ValidationError:
        raise Refused from None
    return entries, doc, None


def column(entries: list, name: str) -> list[Any]:
    """Each entry's value of a field, ABSENT where it has none."""
    return list(map(attrgetter(name), entries))

