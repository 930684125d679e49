"""The slots as the latest tick counted them, so per-checker detail agrees with the votes.

Ingest keeps overwriting slots between ticks. A Query answering vote counts
from the tick but per-checker votes from the live slots would contradict
itself whenever a snapshot arrived in between (a check flapping is exactly
when an operator looks). :class:`TickView` keeps, copy-on-write, the payload
each row had at the latest tick: the first write to a row after a tick saves
the row's old bytes first (one extra row copy, at most once per row per
tick, whatever the report rate), and the tick itself only clears the flags
and copies the per-checker arrival times. Reading a check's column then
takes the saved bytes for rows written since the tick and the live ones for
the rest.
"""

from __future__ import annotations

import numpy as np


class TickView:
    """Per-row payloads and arrival times as of the latest tick."""

    def __init__(self, n_rows: int, nbytes: int) -> None:
        self.saved = np.zeros((n_rows, nbytes), dtype=np.uint8)
        self.is_saved = np.zeros(n_rows, dtype=bool)
        self.received = np.full(n_rows, -np.inf)   # each row's arrival time at the tick
        self.at = 0.0                              # the tick's clock reading
        self.ticked = False

    def before_write(self, row: int, current: bytes) -> None:
        """Call with the row's current payload before overwriting it."""
        if self.ticked and not self.is_saved[row]:
            self.saved[row] = np.frombuffer(current, dtype=np.uint8)
            self.is_saved[row] = True

    def wants_copy(self, row: int) -> bool:
        """Whether before_write would keep the row's payload (spares reading it)."""
        return self.ticked and not bool(self.is_saved[row])

    def on_tick(self, now: float, received: np.ndarray) -> None:
        self.is_saved[:] = False
        self.received = received.copy()
        self.at = now
        self.ticked = True

    def votes_of(self, check_index: int, live: np.ndarray) -> np.ndarray:
        """Each row's 2-bit state for one check at the tick; live: the live column."""
        byte = check_index >> 2
        shift = 6 - 2 * (check_index & 3)
        saved = (self.saved[:, byte] >> shift) & 0x3
        return np.where(self.is_saved, saved, live).astype(np.uint8)
