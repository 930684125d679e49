"""fleet.yaml: regions and their checkers, aggregators, timing and voting."""

from __future__ import annotations

from typing import get_args

from healthplane.proto.config.addresses import parse_hostport
from healthplane.proto.config.model import Fleet, UnknownAs
from healthplane.proto.config.names import id_problem, is_host, is_id
from healthplane.proto.config.scalars import as_bool, as_int, as_list, as_mapping, as_number, as_str
from healthplane.proto.config.yamlnodes import (
    Errors,
    Fields,
    MappingNode,
    Node,
    fmt_num,
    line_of,
    quote,
)

UNKNOWN_AS: tuple[str, ...] = get_args(UnknownAs)

# Floors and ceilings of the fleet's cadence, in seconds. Below the floor a
# tick or a report cycle starves its process's event loop (a checker's
# snapshot and an aggregator's tick of a large registry take milliseconds);
# above the ceiling health changes too slowly to act on.
CADENCE_MIN = 0.05
CADENCE_MAX = 60.0
# A vote older than this is never fresh enough to act on.
STALE_AFTER_MAX = 600.0
FLEET_FIELDS = frozenset({
    "regions", "checkers_per_region", "aggregators", "report_interval", "tick",
    "stale_after", "healthy_fraction", "unknown_as", "canaries", "allow_private_targets",
    "min_votes", "min_regions",
})


def parse_fleet_root(root: MappingNode, errors: Errors) -> Fleet | None:
    """Read a composed fleet.yaml; None when errors were found."""
    f = Fields(root, "", errors)
    f.reject_unknown(FLEET_FIELDS, extensions=True)
    values: dict[str, object] = {}

    node = f.require("regions")
    if node is not None:
        regions = _regions(node, errors)
        if regions is not None:
            values["regions"] = regions
    node = f.require("aggregators")
    if node is not None:
        aggregators = _hostports(node, "aggregators", errors, allow_empty=False)
        if aggregators is not None:
            values["aggregators"] = aggregators

    numbers: dict[str, float] = {}

    def number(key: str, default: float, lo: float | None = None, hi: float | None = None, *,
               lo_open: bool = False, hi_open: bool = False) -> None:
        node = f.get(key)
        value = default if node is None else as_number(node, key, errors, lo, hi,
                                                           lo_open=lo_open, hi_open=hi_open)
        if value is not None:
            values[key] = numbers[key] = value

    node = f.get("checkers_per_region")
    if node is not None and (value := as_int(node, "checkers_per_region", errors, 1)) is not None:
        values["checkers_per_region"] = value
    number("report_interval", 1.0, lo=CADENCE_MIN, hi=CADENCE_MAX)
    number("tick", 1.0, lo=CADENCE_MIN, hi=CADENCE_MAX)
    number("stale_after", 3.0, lo=2 * CADENCE_MIN, hi=STALE_AFTER_MAX)
    for key in ("min_votes", "min_regions"):
        node = f.get(key)
        if node is not None and (value := as_int(node, key, errors, 1, 1000)) is not None:
            values[key] = value
    number("healthy_fraction", 0.18, lo=0, hi=1, hi_open=True)
    _check_stale_after(f, numbers, errors)

    node = f.get("unknown_as")
    if node is not None and (text := as_str(node, "unknown_as", errors)) is not None:
        if text in UNKNOWN_AS:
            values["unknown_as"] = text
        else:
            errors.add(node, "unknown_as",
                       f"must be one of {', '.join(UNKNOWN_AS)} (got {quote(text)})")
    node = f.get("canaries")
    if node is not None and (canaries := _hostports(node, "canaries", errors, True)) is not None:
        values["canaries"] = canaries
    node = f.get("allow_private_targets")
    if node is not None and (flag := as_bool(node, "allow_private_targets", errors)) is not None:
        values["allow_private_targets"] = flag

    if errors:
        return None
    values.setdefault("canaries", values["aggregators"])
    return Fleet(source=errors.source, **values)  # type: ignore[arg-type]


def stale_after_problem(stale: float | None, report: float | None,
                        tick: float | None) -> str | None:
    """What is wrong with stale_after beside the other timings, if anything.

    A snapshot must outlive two reports, or one late snapshot (a reconnect,
    a slow network) would lapse a checker's vote and the fleet would flap
    to unknown; and a whole tick, or a vote could lapse between two ticks
    without ever being counted.
    """
    if stale is None:
        return None
    if report is not None and stale < 2 * report:
        return f"must be >= 2 x report_interval ({fmt_num(2 * report)})"
    if tick is not None and stale < tick:
        return f"must be >= tick ({fmt_num(tick)})"
    return None


def _check_stale_after(f: Fields, numbers: dict[str, float], errors: Errors) -> None:
    stale, report, tick = (numbers.get(k) for k in ("stale_after", "report_interval", "tick"))
    node = f.get("stale_after")
    if node is not None:
        problem = stale_after_problem(stale, report, tick)
        if problem is not None:
            errors.add(node, "stale_after", problem)
        return
    # The default stale_after must fit the timings written.
    default = fmt_num(3.0)
    report_node, tick_node = f.get("report_interval"), f.get("tick")
    if report_node is not None and report is not None and 2 * report > 3.0:
        errors.add(report_node, "report_interval",
                   f"must be <= stale_after / 2 (stale_after is {default} unless set)")
    if tick_node is not None and tick is not None and tick > 3.0:
        errors.add(tick_node, "tick",
                   f"must be <= stale_after (stale_after is {default} unless set)")


def _regions(node: Node, errors: Errors) -> dict[str, tuple[str, ...]] | None:
    mapping = as_mapping(node, "regions", errors)
    if mapping is None:
        return None
    f = Fields(mapping, "regions", errors)
    if not f.entries and not mapping.value:
        errors.add(node, "regions", "must name at least one region")
        return None
    out: dict[str, tuple[str, ...]] = {}
    first_line: dict[str, int] = {}
    ok = True
    for region, (key_node, value_node) in f.entries.items():
        path = f.sub(region)
        if not is_id(region):
            errors.add(key_node, path, "region name " + id_problem(region))
            ok = False
        items = as_list(value_node, path, errors)
        if items is None:
            ok = False
            continue
        if not items:
            errors.add(value_node, path, "must list at least one checker id")
            ok = False
            continue
        ids: list[str] = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            checker = as_str(item, item_path, errors)
            if checker is None:
                ok = False
            elif not is_id(checker):
                errors.add(item, item_path, "checker id " + id_problem(checker))
                ok = False
            elif checker in first_line:
                errors.add(item, item_path, f"duplicate checker id {quote(checker)} "
                                            f"(first at line {first_line[checker]})")
                ok = False
            else:
                first_line[checker] = line_of(item)
                ids.append(checker)
        out[region] = tuple(ids)
    return out if ok else None


def _hostports(node: Node, path: str, errors: Errors, allow_empty: bool) -> tuple[str, ...] | None:
    items = as_list(node, path, errors)
    if items is None:
        return None
    if not items and not allow_empty:
        errors.add(node, path, "must list at least one HOST:PORT")
        return None
    out: list[str] = []
    first_line: dict[str, int] = {}
    ok = True
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        text = as_str(item, item_path, errors)
        if text is None:
            ok = False
            continue
        try:
            host, port = parse_hostport(text)
        except ValueError as exc:
            problem = ("port must be 1..65535" if "port must be" in str(exc)
                       else "must be HOST:PORT, an IPv6 address as [ADDR]:PORT")
            errors.add(item, item_path, f"{problem} (got {quote(text)})")
            ok = False
            continue
        if not is_host(host):
            errors.add(item, item_path, f"host {quote(host)} is not an IP address or a host name")
            ok = False
            continue
        key = f"{host.lower()}:{port}"
        if key in first_line:
            errors.add(item, item_path, f"duplicate address {quote(text)} "
                                        f"(first at line {first_line[key]})")
            ok = False
            continue
        first_line[key] = line_of(item)
        out.append(text.strip())
    return tuple(out) if ok else None
