"""The checker's snapshot: every check of the registry, 2 bits each.

Checks this checker does not probe are 00, as are checks it could not judge
lately and, while it doubts itself, every check (see :mod:`healthplane.checker.selfdoubt`).
The payload is the same size every time: ``ceil(check_count / 4)`` bytes.
"""

from __future__ import annotations

import numpy as np
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb


def report_states(check_count: int, indices: np.ndarray, states: np.ndarray,
                  stale: np.ndarray, doubting: bool) -> np.ndarray:
    """Registry-wide states: ``states[row]`` at registry index ``indices[row]``, else 00.

    indices: per dispatcher row, the registry index of its check; states:
    each row's verdict; stale: True where the verdict is too old to vote with.
    """
    out = np.zeros(check_count, dtype=np.uint8)
    if doubting or indices.size == 0:
        return out
    out[indices] = np.where(stale, codec.UNKNOWN, states)
    return out


def build(*, checker_id: str, region: str, registry_version: str, sequence: int,
          sent_unix_ms: int, states: np.ndarray, incarnation: int = 0) -> pb.CheckerSnapshot:
    """The CheckerSnapshot message for one report.

    incarnation: this checker process's start time in microseconds; with the
    sequence it orders the checker's snapshots across restarts.
    """
    return pb.CheckerSnapshot(
        checker_id=checker_id,
        region=region,
        registry_version=registry_version,
        sequence=sequence,
        sent_unix_ms=sent_unix_ms,
        check_count=int(states.size),
        states=codec.pack(states),
        incarnation=incarnation,
    )
