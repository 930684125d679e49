"""Per-checker high-water marks: no older snapshot ever replaces a newer one.

A checker stamps every snapshot with ``(incarnation, sequence)``: the
incarnation is its process's start time in microseconds, the sequence grows
by one per snapshot of that process. The aggregator keeps, per checker id,
the highest pair it accepted, and takes a snapshot only when its pair is
strictly higher. A replay, a late message on a stream that was replaced, or
a second copy of an old process all carry a pair at or below the mark and
are dropped (``stale_sequence``); a restarted checker carries a larger
incarnation and is taken from its first snapshot.

A checker that sends no incarnation (0, an older release) is ordered by its
sequence alone; a lower sequence from it is taken as a restart only once its
slot has gone stale (no accepted snapshot for ``stale_after``), so a replay
cannot overwrite a live checker's votes.

Marks are keyed by checker id, one small tuple each, recorded only for
snapshots that were accepted, so their number never exceeds the fleet's
checkers; they survive config reloads and end with the process.
"""

from __future__ import annotations


class SequenceMarks:
    """The highest accepted (incarnation, sequence, when) per checker id."""

    __slots__ = ("_marks",)

    def __init__(self) -> None:
        self._marks: dict[str, tuple[int, int, float]] = {}

    def admits(self, checker_id: str, incarnation: int, sequence: int, now: float,
               stale_after: float) -> bool:
        mark = self._marks.get(checker_id)
        if mark is None:
            return True
        inc, seq, when = mark
        if (incarnation, sequence) > (inc, seq):
            return True
        # Without an incarnation a restart looks like a replay; only a checker
        # that has been silent for a while may start counting again.
        return incarnation == 0 and inc == 0 and now - when > stale_after

    def record(self, checker_id: str, incarnation: int, sequence: int, now: float) -> None:
        self._marks[checker_id] = (incarnation, sequence, now)

    def mark(self, checker_id: str) -> tuple[int, int] | None:
        m = self._marks.get(checker_id)
        return None if m is None else (m[0], m[1])

    def __len__(self) -> int:
        return len(self._marks)
