"""healthplane: a constant-work health-checking data plane.

The import package holds every component: ``healthplane.checker`` (probes
endpoints and reports snapshots), ``healthplane.aggregator`` (folds votes into
one health snapshot per tick, and the DNS side that serves it),
``healthplane.proto`` (everything that crosses a process boundary: gRPC,
configuration files, the snapshot codec), ``healthplane.deploy`` (the local
fleet launcher and what an operator runs) and ``healthplane.runtime`` (the
event loop, clocks and schedules both sides share).
"""

__version__ = "0.2.0"
