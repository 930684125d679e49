"""Quorum checks between checks.yaml and fleet.yaml: warnings, not errors.

A check whose quorum (``min_votes`` reporting votes from ``min_regions``
regions, per check or fleet-wide) is larger than the checkers that can ever
probe it never has data: ``unknown_as`` decides it forever. That is legal
(a fleet may be growing into its configuration) but almost always a
mistake, so ``healthplane validate`` says so without failing.
"""

from __future__ import annotations

from healthplane.proto.config.model import Fleet, Registry


def quorum_warnings(registry: Registry, fleet: Fleet) -> list[str]:
    """One line per check that can never reach its quorum, with file:line."""
    out: list[str] = []
    source = registry.source or "checks.yaml"
    columns = zip(*(registry.column(name) for name in (
        "type", "disabled", "regions", "min_votes", "min_regions", "line")), strict=True)
    for i, (kind, disabled, own_regions, own_votes, own_regions_min, line) in enumerate(columns):
        if kind == "calculated" or disabled:
            continue
        regions = [r for r in (own_regions or tuple(fleet.regions)) if fleet.regions.get(r)]
        voters = sum(min(fleet.checkers_per_region, len(fleet.regions[r])) for r in regions)
        min_votes = own_votes or fleet.min_votes
        min_regions = own_regions_min or fleet.min_regions
        problems = []
        if voters < min_votes:
            problems.append(f"min_votes {min_votes} but at most {voters} checker(s) probe it")
        if len(regions) < min_regions:
            problems.append(f"min_regions {min_regions} but it is probed in "
                            f"{len(regions)} region(s)")
        if problems:
            out.append(f"{source}:{line}: checks[{i}]: can never reach its quorum: "
                       f"{'; '.join(problems)} (unknown_as {fleet.unknown_as} decides it)")
    return out
