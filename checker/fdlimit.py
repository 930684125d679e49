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

try:
    import resource
except ImportError:   # not on POSIX: nothing to raise
    resource = None  # type: ignore[assignment]

log = logging.getLogger("healthplane.checker")

# Descriptors besides probe sockets: aggregator streams, the metrics server
# and its clients, log files, the reload child's pipes, the event loop's own.
RESERVE = 256


def ensure_open_files(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to at least `needed` if the hard limit allows.

    Returns the soft limit now in force (a very large number when unlimited
    or unknown).
    """
    if resource is None:
        return 1 << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    if soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit",
                        extra={"soft": soft, "wanted": target, "error": str(exc)})
    return soft


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
