"""Raise the open-files soft limit for a process that needs many sockets.

Many shells and containers start processes with a soft limit of 1,024 open
files, far below the hard limit. A checker with thousands of probes in
flight, or an aggregator with thousands of client connections, would hit it
and fail every new socket with EMFILE; each raises its soft limit (never the
hard one) to fit, or lowers its own bounds when even the hard limit is short.
"""

from __future__ import annotations

import logging

try:
    import resource
except ImportError:   # not on POSIX: nothing to raise
    resource = None  # type: ignore[assignment]

log = logging.getLogger("healthplane.runtime")


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
