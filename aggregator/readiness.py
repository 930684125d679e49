"""``/readyz`` of an aggregator: ready once it publishes ticks built from real votes.

Not ready until a tick has counted at least one fresh checker snapshot: a
just-started aggregator knows nothing, and a DNS front or an operator that
trusted it would see every check as "never seen". Once ready it stays ready
(a restart is the only way back): an aggregator whose checkers all went
quiet still answers correctly (``unknown_as`` decides), and taking every
aggregator out of a Service at once would leave DNS fronts with nothing.

Nor while it warms up after a start (its ticks are marked ``warming`` until
every checker reported or one ``stale_after`` passed; see warmstart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from healthplane.aggregator.state import AggregatorState


class AggregatorReadiness:
    """The aggregator's readiness callback for the side port."""

    def __init__(self, state: AggregatorState) -> None:
        self._state = state
        self._ready = False

    def __call__(self) -> tuple[bool, str]:
        pub = self._state.latest
        if self._ready:
            return True, f"tick {pub.sequence if pub else 0}"
        if pub is None:
            return False, "no tick computed yet"
        if pub.warming:
            return False, f"tick {pub.sequence} warming up: not yet heard from every checker"
        if pub.fresh_checkers == 0:
            return False, f"tick {pub.sequence} counted no fresh checker snapshot yet"
        self._ready = True
        return True, f"tick {pub.sequence} with {pub.fresh_checkers} fresh checkers"
