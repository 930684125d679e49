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
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from proto.config.model import Check, Registry

# Bump when the canonical form changes meaning, so old and new never collide.
CANONICAL_FORMAT = "healthplane.checks/1"
VERSION_HEX_CHARS = 16

_FLOAT_FIELDS = frozenset({"interval", "timeout"})
# Order inside these lists carries no meaning (membership does).
_SET_FIELDS = frozenset({"regions", "children"})
_FIELD_NAMES = tuple(f.name for f in fields(Check) if f.name != "line")


def canonical_check(check: Check) -> dict[str, Any]:
    """The check with every field present and each value in one spelling."""
    out: dict[str, Any] = {}
    for name in _FIELD_NAMES:
        value = getattr(check, name)
        if name in _FLOAT_FIELDS:
            value = float(value)
        elif name in _SET_FIELDS:
            value = sorted(value)
        out[name] = value
    return out


def registry_version(checks: Iterable[Check]) -> str:
    """16 hex chars of sha256 over the canonical JSON of the checks, in order."""
    doc = {"format": CANONICAL_FORMAT, "checks": [canonical_check(c) for c in checks]}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:VERSION_HEX_CHARS]


def make_registry(checks: Iterable[Check], source: str = "") -> Registry:
    """A Registry of already valid checks with its version computed.

    For code and tests that build checks directly instead of loading a file.
    """
    checks = tuple(checks)
    return Registry(checks=checks, version=registry_version(checks), source=source)
