"""Fold finished probes into a dispatcher's verdicts and per-row detail.

Both probe paths end here: the Python probers' results and the compiled
engine's arrays arrive as one batch of arrays (rows, outcomes, latencies,
certificate expiries, reasons), folded with a few numpy operations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from healthplane.checker.probes.base import Outcome

# The dispatcher imports this module, so it is typed loosely here (the
# package keeps its import graph free of circles, type-only imports included).
Dispatcher = Any


def fold(d: Dispatcher, rows: np.ndarray, codes: np.ndarray, latencies: np.ndarray,
         certs: np.ndarray, reason_list: list[str]) -> None:
    """One batch of results into d (rows may repeat: the later result wins)."""
    now = d._last_flush
    # A check whose previous result is older than the stale rule (the
    # process was stopped, the VM paused, a GC ran long) rebuilds its
    # verdict from new results only: carried over, the old verdict would
    # vote again with the first new result, however long ago it was made.
    gap = rows[(now - d.last_result[rows]) > d.stale_bound(rows)]
    if gap.size:
        d.verdicts.reset(gap)
    d.verdicts.apply(rows, codes == Outcome.OK)
    d.last_result[rows] = now
    # A row with two results in one batch (rare: intervals are >= 1 s and
    # batches a quarter second) keeps the later: 1-D assignment with a
    # repeated index takes the last value, as the reasons loop does.
    d.outcomes[rows] = codes
    d.latencies[rows] = latencies
    d.note_certs(rows, certs)
    reasons = d.reasons
    for row, reason in zip(rows.tolist(), reason_list, strict=True):
        reasons[row] = reason
    d.finished += rows.size
    if d._count_probes is not None:
        d._count_probes(d.kinds[rows], codes)


def carry(new: Dispatcher, old: Dispatcher) -> None:
    """Adopt old's verdicts and freshness for checks that kept their id."""
    old.flush()
    row_of = new.row_of
    pairs = [(r_old, row_of[c]) for r_old, c in enumerate(old.ids) if c in row_of]
    if not pairs:
        return
    old_rows = np.asarray([p[0] for p in pairs], dtype=np.int64)
    new_rows = np.asarray([p[1] for p in pairs], dtype=np.int64)
    new.verdicts.carry_from(old.verdicts, old_rows, new_rows)
    new.last_result[new_rows] = old.last_result[old_rows]
    new.outcomes[new_rows] = old.outcomes[old_rows]
    new.latencies[new_rows] = old.latencies[old_rows]
    new.note_certs(new_rows, old.cert_not_after[old_rows])
    for r_old, r_new in pairs:
        new.reasons[r_new] = old.reasons[r_old]
