"""The figures an aggregator's metrics report, read from its parts in one place."""

from __future__ import annotations

from collections.abc import Mapping

from healthplane.aggregator.metrics import AggregatorStats
from healthplane.aggregator.snapshot_file import SnapshotFileWriter
from healthplane.aggregator.state import AggregatorState
from healthplane.aggregator.tick_result import TickResult
from healthplane.aggregator.tickloop import TickLoop
from healthplane.aggregator.watchers import LatestHub


def aggregator_stats(st: AggregatorState, loop: TickLoop, hub: LatestHub[TickResult],
                     w: SnapshotFileWriter | None, reloads: Mapping[str, int], *,
                     warming: bool) -> AggregatorStats:
    """As of now; cheap: no per-check work."""
    latest = st.latest
    counts = latest.status_counts() if latest is not None else [0, 0, 0, 0]
    previous = [v for v in st.versions if v != st.registry.version]
    return AggregatorStats(
        ticks=st.sequence - st.sequence_base,
        sequence=st.sequence,
        warming=warming,
        ticks_missed=loop.missed,
        ticks_failed=loop.failed,
        snapshots_accepted=st.counters.accepted,
        snapshots_remapped=st.counters.remapped,
        snapshots_dropped=dict(st.counters.dropped),
        checkers=len(st.checker_ids),
        fresh_checkers=latest.fresh_checkers if latest is not None else 0,
        checks_by_state=tuple(int(c) for c in counts),
        state_changes_last_tick=latest.changed if latest is not None else 0,
        state_changes=st.changes_total,
        watchers=hub.watchers,
        watch_skipped=hub.skipped,
        snapshot_file_writes={"ok": w.written, "failed": w.failed, "skipped": w.skipped}
        if w is not None else {},
        config_reloads=dict(reloads),
        registry_version=st.registry.version,
        previous_version=previous[0] if previous else "",
        registry_checks=st.registry.check_count)
