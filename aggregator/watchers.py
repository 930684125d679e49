"""Fan-out of each tick to Watch streams: one latest-value slot per watcher.

Publishing overwrites every watcher's slot and sets its event; a watcher
that has not sent the previous value yet simply finds a newer one when it
gets to it. Memory is one reference per watcher whatever its speed, and the
ticks a slow watcher never saw are counted, not queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _Slot(Generic[T]):
    __slots__ = ("value", "event", "pending")

    def __init__(self) -> None:
        self.value: T | None = None
        self.event = asyncio.Event()
        self.pending = False  # a value is in the slot and not yet taken


class LatestHub(Generic[T]):
    """Hands every subscriber the newest value; never more than one held per subscriber."""

    def __init__(self) -> None:
        self._slots: set[_Slot[T]] = set()
        self.skipped = 0  # values overwritten before their watcher took them
        self._closed = False

    @property
    def watchers(self) -> int:
        return len(self._slots)

    def publish(self, value: T) -> None:
        for slot in self._slots:
            if slot.pending:
                self.skipped += 1
            slot.value = value
            slot.pending = True
            slot.event.set()

    def close(self) -> None:
        """End every subscription (server shutdown)."""
        self._closed = True
        for slot in self._slots:
            slot.event.set()

    async def subscribe(self, first: T | None = None) -> AsyncIterator[T]:
        """Yield values as they are published, starting with ``first`` if given."""
        slot: _Slot[T] = _Slot()
        if first is not None:
            slot.value, slot.pending = first, True
            slot.event.set()
        self._slots.add(slot)
        try:
            while not self._closed:
                await slot.event.wait()
                slot.event.clear()
                if self._closed:
                    return
                if not slot.pending:
                    continue
                value, slot.pending = slot.value, False
                assert value is not None
                yield value
        finally:
            self._slots.discard(slot)
