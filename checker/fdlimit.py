"""Make room in the open-files limit for every probe that may be in flight.

Each probe in flight holds a socket. When endpoints time out, probes hold
theirs for the whole timeout, so a checker making 2,500 probes per second
with 1 s timeouts keeps about 2,500 sockets open, up to its concurrency
limit. Many shells and containers start processes with a soft limit of 1,024
open files: past it every connect fails at once with EMFILE, and healthy
endpoints would be reported as failing exactly when many others time out.

So the checker raises its soft limit (never the hard one) to cover the
concurrency limit plus a reserve for everything else it keeps open. If the
hard limit is too low, the concurrency limit is lowered to fit instead:
slots then wait or are skipped and counted (the schedule's self-doubt sees
them), rather than turned into false failures.
"""

from __future__ import annotations

import logging

from healthplane.runtime.fdlimit import ensure_open_files, resource

__all__ = ["RESERVE", "ensure_open_files", "fit_probe_limit", "resource"]

log = logging.getLogger("healthplane.checker")

# Descriptors besides probe sockets: aggregator streams, the metrics server
# and its clients, log files, the reload child's pipes, the event loop's own.
RESERVE = 256


def fit_probe_limit(limit: int, other_probes: int = 0) -> int:
    """The concurrency limit to use: `limit` if the open-files limit has room for it.

    Raises the soft limit as needed; when even the hard limit is too small,
    returns the largest probe limit that fits and logs why.
    """
    soft = ensure_open_files(limit + other_probes + RESERVE)
    room = soft - other_probes - RESERVE
    if room >= limit:
        return limit
    fitted = max(1, room)
    log.warning("the open-files limit is too low: lowering the concurrency limit "
                "(raise `ulimit -Hn`, or LimitNOFILE under systemd)",
                extra={"open_files": soft, "limit": fitted, "wanted": limit})
    return fitted
