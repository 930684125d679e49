"""The report remapped onto the previous registry keeps the checker's mark and details."""

from __future__ import annotations

import numpy as np
from healthplane.checker import snapshot
from healthplane.checker.rollout import Previous
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

from .helpers import make_registry, tcp_checks


def _rollout() -> tuple[Previous, list[str], list[str]]:
    old_checks = tcp_checks(3)                       # c0 c1 c2
    new_checks = [*tcp_checks(1, prefix="new"), old_checks[2], old_checks[0]]  # new0 c2 c0
    old, new = make_registry(old_checks), make_registry(new_checks)
    return Previous.between(old, new), list(old.ids), list(new.ids)


def test_the_remapped_report_keeps_incarnation_and_sequence() -> None:
    previous, _, _ = _rollout()
    states = np.array([codec.UNHEALTHY, codec.HEALTHY, codec.UNHEALTHY], dtype=np.uint8)
    msg = snapshot.build(checker_id="c-1", region="r", registry_version="new", sequence=41,
                         sent_unix_ms=5, states=states, incarnation=1_700_000_000_000_000)
    older = previous.fallback(msg, states)()
    assert (older.incarnation, older.sequence) == (msg.incarnation, msg.sequence)
    assert older.registry_version == previous.version
    # old c0 <- new c0 (UNHEALTHY), old c1 is gone (unknown), old c2 <- new c2 (HEALTHY)
    got = codec.unpack(older.states, older.check_count)
    assert got.tolist() == [codec.UNHEALTHY, codec.UNKNOWN, codec.HEALTHY]


def test_the_remapped_report_moves_details_to_old_indices() -> None:
    previous, old_ids, new_ids = _rollout()
    states = np.zeros(3, dtype=np.uint8)
    msg = snapshot.build(checker_id="c-1", region="r", registry_version="new", sequence=1,
                         sent_unix_ms=5, states=states)
    for i in range(3):
        msg.details.append(pb.ProbeDetail(check_index=i, outcome=pb.STATUS_UNHEALTHY,
                                          latency_ms=float(i), reason="refused"))
    older = previous.fallback(msg, states)()
    moved = {old_ids[d.check_index]: d.latency_ms for d in older.details}
    # new0 has no place in the old registry; c2 and c0 keep their own detail.
    assert moved == {new_ids[1]: 1.0, new_ids[2]: 2.0}
