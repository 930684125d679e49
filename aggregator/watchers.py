"""Fan-out of each tick to Watch streams: one latest-value slot per watcher.

Each watcher's slot is a :class:`~healthplane.runtime.slot.LatestSlot`.

Publishing overwrites every watcher's slot; a watcher
that has not sent the previous value yet simply finds a newer one when it
gets to it. Memory is one reference per watcher whatever its speed, and the
ticks a slow watcher never saw are counted, not queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from healthplane.runtime.slot import LatestSlot

T = TypeVar("T")


class LatestHub(Generic[T]):
    """Hands every subscriber the newest value; never more than one held per subscriber."""

    def __init__(self) -> None:
        self._slots: set[LatestSlot[T]] = set()
        self.skipped = 0  # values overwritten before their watcher took them
        self._closed = False

    @property
    def watchers(self) -> int:
        return len(self._slots)

    def publish(self, value: T) -> None:
        for slot in self._slots:
            if slot.put(value):
                self.skipped += 1

    def close(self) -> None:
        """End every subscription (server shutdown)."""
        self._closed = True
        for slot in self._slots:
            slot.close()

    async def subscribe(self, first: T | None = None) -> AsyncIterator[T]:
        """Yield values as they are published, starting with ``first`` if given."""
        slot: LatestSlot[T] = LatestSlot()
        if first is not None:
            slot.put(first)
        if self._closed:
            return
        self._slots.add(slot)
        try:
            while (value := await slot.take()) is not None and not self._closed:
                yield value
        finally:
            self._slots.discard(slot)
