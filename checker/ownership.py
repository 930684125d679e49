"""Which checks this checker probes: rendezvous hashing per check and region.

For every check and every region the check runs in, each checker of that
region gets a score, a stable 64-bit hash of (check id, checker id); the
``checkers_per_region`` highest scores win. This is rendezvous (highest
random weight) hashing: every checker computes the same answer alone, load
spreads evenly, and when a checker joins or leaves only the checks it wins
or loses move (about 1/n of them), nothing else.

The hash is BLAKE2b (once per check id and once per checker id, mixed per
pair with the splitmix64 finaliser), not Python's ``hash()``: that one is
salted per process, and every checker of a fleet must agree.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
from healthplane.proto.config.model import Fleet, Registry

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


def _mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _hashes(prefix: str, names: Sequence[str]) -> np.ndarray:
    return np.fromiter((stable_hash64(prefix, n) for n in names), dtype=np.uint64,
                       count=len(names))


def scores(check_ids: Sequence[str], checker_ids: Sequence[str]) -> np.ndarray:
    """Rendezvous scores, shape (checks, checkers).

    BLAKE2b is paid once per check and once per checker; each pair's score
    is then a mix of the two hashes, so a large registry costs one hash per
    check, not one per (check, checker).
    """
    hc = _hashes("check", check_ids)
    hk = _hashes("checker", checker_ids)
    return _mix64(hc[:, None] ^ hk[None, :])


def owners(check_id: str, candidates: Sequence[str], k: int) -> list[str]:
    """The k checkers among candidates that probe check_id (all of them if fewer).

    Ties cannot matter in practice (64-bit scores) but are broken by checker
    id so the answer stays deterministic.
    """
    if k >= len(candidates):
        return list(candidates)
    row = scores([check_id], candidates)[0]
    ranked = sorted(zip(row.tolist(), candidates, strict=True), reverse=True)
    return [c for _, c in ranked[:k]]


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
    members = list(fleet.regions[region])
    eligible = [i for i, (kind, disabled, regions) in enumerate(zip(
                    registry.column("type"), registry.column("disabled"),
                    registry.column("regions"), strict=True))
                if kind != "calculated" and not disabled
                and region in check_regions(regions, fleet)]
    if not eligible:
        return mask
    k = fleet.checkers_per_region
    idx = np.asarray(eligible, dtype=np.int64)
    if k >= len(members):
        mask[idx] = True
        return mask
    s = scores(registry.column("id", idx), members)
    me = members.index(checker_id)
    mine = s[:, me:me + 1]
    # Rank of this checker per check: how many members beat it (ties go to
    # the larger checker id, as in owners()).
    ids = np.asarray(members)
    beats = (s > mine) | ((s == mine) & (ids[None, :] > checker_id))
    mask[idx] = beats.sum(axis=1) < k
    return mask
