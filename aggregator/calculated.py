"""Dependency levels of calculated checks.

A calculated check is evaluated after its children, so the tick walks the
calculated checks level by level: level 0 has only probed children, level
k children of level < k. Each level is one vectorised step; the Python loop
here runs once per registry, never per tick.
"""

from __future__ import annotations

from healthplane.proto.config.model import Registry


def calculated_levels(registry: Registry) -> list[list[int]]:
    """Calculated check indices grouped by nesting depth (children first).

    Raises ValueError for an unknown child or a cycle.
    """
    index = registry.index_of()
    checks = registry.checks
    types = registry.column("type")
    calc = [i for i, t in enumerate(types) if t == "calculated"]
    pending: dict[int, set[int]] = {}
    for i in calc:
        deps = set()
        for child in checks[i].children:
            if child not in index:
                raise ValueError(f"calculated check {checks[i].id!r}: unknown child {child!r}")
            j = index[child]
            if types[j] == "calculated":
                deps.add(j)
        pending[i] = deps
    levels: list[list[int]] = []
    done: set[int] = set()
    while pending:
        ready = sorted(i for i, deps in pending.items() if deps <= done)
        if not ready:
            raise ValueError("calculated checks form a cycle: "
                             + ", ".join(sorted(checks[i].id for i in pending)))
        levels.append(ready)
        done.update(ready)
        for i in ready:
            del pending[i]
    return levels
