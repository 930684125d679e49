"""A latest-value slot: a writer overwrites, a reader awaits; nothing queues.

Principle 2 of the design in one small type. Whatever the rates of writer
and reader, the slot holds at most one value: a value not taken before the
next one arrives is replaced (and counted), so a slow reader costs one
reference of memory and sees the newest value when it gets to it.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """One value, overwritten by :meth:`put`, taken by :meth:`take`.

    After :meth:`close`, :meth:`take` still returns a value put before the
    close, then None for ever.
    """

    __slots__ = ("_value", "_full", "_event", "_closed", "replaced")

    def __init__(self) -> None:
        self._value: T | None = None
        self._full = False
        self._event = asyncio.Event()
        self._closed = False
        self.replaced = 0       # values overwritten before anyone took them

    @property
    def full(self) -> bool:
        """A value is waiting to be taken."""
        return self._full

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, value: T) -> bool:
        """Store value, replacing an untaken one; True when one was replaced."""
        replaced = self._full
        if replaced:
            self.replaced += 1
        self._value, self._full = value, True
        self._event.set()
        return replaced

    def put_back(self, value: T) -> None:
        """Return a taken value that could not be used, unless a newer one came meanwhile."""
        if not self._full:
            self._value, self._full = value, True
            self._event.set()

    def take_nowait(self) -> T | None:
        """The waiting value (emptying the slot), or None."""
        if not self._full:
            return None
        value, self._value, self._full = self._value, None, False
        return value

    async def take(self) -> T | None:
        """Wait for a value and take it; None once closed and empty."""
        while not self._full and not self._closed:
            self._event.clear()
            await self._event.wait()
        return self.take_nowait()

    def close(self) -> None:
        """Wake the reader for good: take() returns what is left, then None."""
        self._closed = True
        self._event.set()
