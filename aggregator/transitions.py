"""One structured log line per status change at an aggregator, bounded per tick.

"Why did www fail over?" starts here: each change is one record,
``status change``, with the fields check, old, new, votes (healthy/reporting
at the tick) and reasons, each checker's latest probe reason
(``use1-a:refused,euw1-a:timeout``). At most ``LOG_LIMIT`` lines a
tick; beyond that one summary line gives the count, so a failure storm
costs the log what a bad minute does.
"""

from __future__ import annotations

import logging

from healthplane.aggregator.state import AggregatorState
from healthplane.aggregator.tick_result import TickResult

log = logging.getLogger("healthplane.aggregator.transitions")

LOG_LIMIT = 20
_NAMES = {1: "healthy", 2: "unhealthy"}


def log_transitions(state: AggregatorState, pub: TickResult) -> int:
    """Log pub's status changes; returns how many lines were written."""
    if not pub.changed or not log.isEnabledFor(logging.INFO):
        return 0
    indices = pub.changed_indices()[:LOG_LIMIT]
    if pub.registry is not state.registry:
        return 0   # a reload came between: the detail is on another registry
    status = pub.status_of(indices).tolist()
    healthy, reporting = (v.tolist() for v in pub.votes(indices))
    ids = pub.registry.ids
    for n, i in enumerate(indices.tolist()):
        new = int(status[n])
        log.info("status change", extra={
            "check": ids[i], "old": _NAMES.get(3 - new, "unknown"),
            "new": _NAMES.get(new, str(new)), "votes": f"{healthy[n]}/{reporting[n]}",
            "reasons": state.details.reasons_of(i, state.checker_ids) or "none"})
    if pub.changed > len(indices):
        log.info("status changes not logged", extra={
            "changes": pub.changed, "logged": len(indices), "tick": pub.sequence})
    return len(indices) + (pub.changed > len(indices))
