"""checks.yaml rules across entries and files: ids, children, regions, targets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, compress
from operator import attrgetter, itemgetter
from typing import Any

from healthplane.proto.config.addresses import forbidden_reason
from healthplane.proto.config.check_columns import EntryColumns
from healthplane.proto.config.check_fields import Entry
from healthplane.proto.config.model import Fleet
from healthplane.proto.config.names import ip_literal, is_localhost
from healthplane.proto.config.yamlnodes import Errors, quote

_ID = attrgetter("id")
_FIRST = itemgetter(0)
Entries = list[Entry] | EntryColumns


def _column(entries: Entries, name: str) -> Sequence[Any]:
    """Each entry's field name, by a C loop or straight from the columns."""
    if isinstance(entries, EntryColumns):
        return entries.columns[name]
    return list(map(attrgetter(name), entries))


def check_cross_entry(entries: Entries, errors: Errors, fleet: Fleet | None,
                      allow_private: bool | None) -> None:
    """Every rule that spans entries or files, in the order messages are reported.

    Both the YAML and the JSON reader call this, so the two can never run
    different rules.
    """
    first_line = check_duplicates(entries, errors)
    check_children(entries, first_line, errors)
    if fleet is not None:
        check_regions(entries, fleet, errors)
    if allow_private is not None and not allow_private:
        check_private(entries, fleet, errors)


def check_duplicates(entries: Entries, errors: Errors) -> dict[str, int]:
    """Report ids used twice, naming the first line; return id -> index of first."""
    if isinstance(entries, EntryColumns):
        ids: Iterable[str] | None = entries.ids
    else:
        spots = list(map(_ID, entries))
        ids = map(_FIRST, spots) if None not in spots else None
    if ids is not None:
        # Every id good and, the common case, each once: found by C loops.
        first = dict(zip(ids, range(len(entries)), strict=True))
        if len(first) == len(entries):
            return first
    first = {}
    for i, entry in enumerate(entries):
        if entry.id is None:
            continue
        check_id, line = entry.id
        if check_id in first:
            earlier = entries[first[check_id]]
            if earlier.source is not None and earlier.source is entry.source:
                where = f"{earlier.path} repeated by an alias"
            else:
                where = f"first at line {earlier.id[1]}"  # type: ignore[index]
            errors.add(line, f"{entry.path}.id", f"duplicate id {quote(check_id)} ({where})")
        else:
            first[check_id] = i
    return first


def check_children(entries: Entries, index: dict[str, int], errors: Errors) -> None:
    """Every child exists; the graph of calculated checks has no cycle."""
    graph: dict[int, list[int]] = {}
    for i in compress(range(len(entries)), _column(entries, "children")):
        entry = entries[i]
        edges = graph.setdefault(i, [])
        for child, line, j in entry.children:
            target = index.get(child)
            if target is None:
                errors.add(line, f"{entry.path}.children[{j}]", f"unknown check {quote(child)}")
            else:
                edges.append(target)
    for cycle in _cycles(graph):
        start = entries[cycle[0]]
        names = " -> ".join(entries[k].id[0] for k in cycle + [cycle[0]])  # type: ignore[index]
        errors.add(start.children[0][1], f"{start.path}.children", f"cycle {names}")


def _cycles(graph: dict[int, list[int]]) -> list[list[int]]:
    """One cycle per back edge found by an iterative depth-first search."""
    state: dict[int, int] = {}  # 1 on the stack, 2 done
    found: list[list[int]] = []
    for root in sorted(graph):
        if root in state:
            continue
        stack: list[tuple[int, int]] = [(root, 0)]
        path: list[int] = [root]
        state[root] = 1
        while stack:
            node, next_edge = stack[-1]
            edges = graph.get(node, [])
            if next_edge >= len(edges):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, next_edge + 1)
            child = edges[next_edge]
            if state.get(child) == 1:
                found.append(path[path.index(child):])
            elif child not in state:
                state[child] = 1
                stack.append((child, 0))
                path.append(child)
    return found


def check_regions(entries: Entries, fleet: Fleet, errors: Errors) -> None:
    named = set(map(_FIRST, chain.from_iterable(_column(entries, "regions"))))
    if named <= fleet.regions.keys():
        return       # the common case, found without a loop over every entry
    known = ", ".join(fleet.regions)
    for entry in entries:
        for region, line, j in entry.regions:
            if region not in fleet.regions:
                errors.add(line, f"{entry.path}.regions[{j}]",
                           f"unknown region {quote(region)} (the fleet has {known})")


def check_private(entries: Entries, fleet: Fleet | None, errors: Errors) -> None:
    """Refuse literal targets in forbidden ranges (see healthplane.proto.config.addresses).

    Host names other than localhost are resolved by the probes, which apply
    the same policy to the addresses they get.
    """
    hint = ("refused unless the fleet sets allow_private_targets: true"
            + ("" if fleet is not None else " (no fleet given, so it is false)"))
    # host -> problem; registries repeat hosts
    problems = {host: _private_problem(host)
                for host in set(map(_FIRST, filter(None, _column(entries, "host"))))}
    if not any(problems.values()):
        return       # the common case, found without a loop over every entry
    for entry in entries:
        if entry.host is None:
            continue
        host, line = entry.host
        problem = problems[host]
        if problem is not None:
            errors.add(line, f"{entry.path}.host", f"{problem}; {hint}")


def _private_problem(host: str) -> str | None:
    ip = ip_literal(host)
    if ip is not None:
        reason = forbidden_reason(ip)
        return None if reason is None else f"{host} is a {reason} address"
    return f"{host} is a loopback name" if is_localhost(host) else None
