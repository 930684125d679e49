"""Reporting during a rollout: the same report on the registry being replaced.

Each host gets its new checks.yaml on its own schedule. When a checker
adopts a new registry first, an aggregator still on the old one cannot read
its snapshots (every bit position may have moved). :class:`Previous` keeps
where each check of the old registry is in the new one, and
:meth:`Previous.fallback` builds, only when a stream asks for it (see
checker.streams), the report remapped onto the old registry by check id:
checks the new registry dropped read unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from healthplane.checker import snapshot
from healthplane.proto.config.model import Registry
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb


@dataclass(frozen=True, slots=True)
class Previous:
    """The registry before the last change, and where each of its checks is now."""

    version: str
    check_count: int
    source: np.ndarray     # per old check, its index in the new registry, -1 if gone

    @staticmethod
    def between(old: Registry, new: Registry) -> Previous:
        index = new.index_of()
        source = np.array([index.get(cid, -1) for cid in old.ids], dtype=np.int64)
        return Previous(old.version, old.check_count, source)

    def remap(self, states: np.ndarray) -> np.ndarray:
        """States on the new registry -> the same states on the old one (gone: 00)."""
        ext = np.zeros(states.size + 1, dtype=np.uint8)
        ext[:-1] = states
        return ext[self.source]

    def fallback(self, msg: pb.CheckerSnapshot, states: np.ndarray
                 ) -> Callable[[], pb.CheckerSnapshot]:
        """A builder of msg on this registry, run at most once, only if a stream asks."""
        built: list[pb.CheckerSnapshot] = []

        def build() -> pb.CheckerSnapshot:
            if not built:
                built.append(snapshot.build(
                    checker_id=msg.checker_id, region=msg.region, registry_version=self.version,
                    sequence=msg.sequence, sent_unix_ms=msg.sent_unix_ms,
                    states=self.remap(states)))
            return built[0]
        return build
