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
    for i, c in enumerate(registry.checks):
        if c.type == "calculated" or c.disabled:
            continue
        regions = [r for r in (c.regions or tuple(fleet.regions)) if fleet.regions.get(r)]
        voters = sum(min(fleet.checkers_per_region, len(fleet.regions[r])) for r in regions)
        min_votes = c.min_votes or fleet.min_votes
        min_regions = c.min_regions or fleet.min_regions
        problems = []
        if voters < min_votes:
            problems.append(f"min_votes {min_votes} but at most {voters} checker(s) probe it")
        if len(regions) < min_regions:
            problems.append(f"min_regions {min_regions} but it is probed in "
                            f"{len(regions)} region(s)")
        if problems:
            out.append(f"{source}:{c.line}: checks[{i}]: can never reach its quorum: "
                       f"{'; '.join(problems)} (unknown_as {fleet.unknown_as} decides it)")
    return out
