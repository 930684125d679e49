"""Which checks this checker probes: rendezvous hashing per check and region.

For every check and every region the check runs in, each checker of that
region gets a score, a stable 64-bit hash of (check id, checker id); the
``checkers_per_region`` highest scores win. This is rendezvous (highest
random weight) hashing: every checker computes the same answer alone, load
spreads evenly, and when a checker joins or leaves only the checks it wins
or loses move (about 1/n of them), nothing else.

The hash is BLAKE2b, not Python's ``hash()``: that one is salted per
process, and every checker of a fleet must agree.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from proto.config.model import Fleet, Registry

_U64 = struct.Struct(">Q")


def stable_hash64(*parts: str) -> int:
    """A 64-bit hash of strings, the same in every process and on every host."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        data = part.encode()
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        h.update(_U64.pack(len(data)))
        h.update(data)
    return _U64.unpack(h.digest())[0]


def owners(check_id: str, candidates: tuple[str, ...] | list[str], k: int) -> list[str]:
    """The k checkers among candidates that probe check_id (all of them if fewer).

    Ties cannot matter in practice (64-bit scores) but are broken by checker
    id so the answer stays deterministic.
    """
    if k >= len(candidates):
        return list(candidates)
    scored = sorted(candidates, key=lambda c: (stable_hash64("own", check_id, c), c),
                    reverse=True)
    return scored[:k]


def check_regions(check_regions: tuple[str, ...], fleet: Fleet) -> tuple[str, ...]:
    """The regions a check runs in: its own list, or every region of the fleet."""
    return check_regions if check_regions else tuple(fleet.regions)


def owned_mask(registry: Registry, fleet: Fleet, checker_id: str) -> np.ndarray:
    """Boolean array over the registry: True where checker_id probes the check.

    Calculated checks are never probed (the aggregator derives them from
    their children) and disabled checks are not either (the aggregator
    reports them healthy whatever a probe would say), so both stay False.
    A checker not in the fleet owns nothing.
    """
    mask = np.zeros(registry.check_count, dtype=bool)
    region = fleet.region_of(checker_id)
    if region is None:
        return mask
    members = fleet.regions[region]
    k = fleet.checkers_per_region
    for i, check in enumerate(registry.checks):
        if check.type == "calculated" or check.disabled:
            continue
        if region not in check_regions(check.regions, fleet):
            continue
        if checker_id in owners(check.id, members, k):
            mask[i] = True
    return mask
