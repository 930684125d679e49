"""Reporting during a rollout: the same report on the registry being replaced.

Each host gets its new checks.yaml on its own schedule. When a checker
adopts a new registry first, an aggregator still on the old one cannot read
its snapshots (every bit position may have moved). :class:`Previous` keeps
where each check of the old registry is in the new one, and
:meth:`Previous.fallback` builds, only when a stream asks for it (see
checker.streams), the report remapped onto the old registry by check id:
checks the new registry dropped read unknown. The remapped report keeps the
checker's (incarnation, sequence) mark, so the aggregator orders it with the
checker's other snapshots, and its probe details, each moved to its check's
old index (details of checks the old registry lacks are left out).
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

    def old_index(self) -> np.ndarray:
        """Per new check, its index in the old registry, -1 if it is new."""
        size = int(self.source.max(initial=-1)) + 1
        inverse = np.full(size, -1, dtype=np.int64)
        present = self.source >= 0
        inverse[self.source[present]] = np.flatnonzero(present)
        return inverse

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
                older = snapshot.build(
                    checker_id=msg.checker_id, region=msg.region, registry_version=self.version,
                    sequence=msg.sequence, sent_unix_ms=msg.sent_unix_ms,
                    states=self.remap(states), incarnation=msg.incarnation)
                inverse = self.old_index()
                for d in msg.details:
                    i = d.check_index
                    if i < inverse.size and inverse[i] >= 0:
                        moved = older.details.add()
                        moved.CopyFrom(d)
                        moved.check_index = int(inverse[i])
                built.append(older)
            return built[0]
        return build
