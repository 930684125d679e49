"""The freshest snapshot and everyone who hears of it.

:class:`SnapshotFeed` is the reading side of the consumer: the snapshot now
held, callbacks called on each new one, and async readers that each see the
latest (a slow reader skips snapshots, never queues them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from healthplane.runtime.slot import LatestSlot

from .snapshots import UNKNOWN, Snapshot

log = logging.getLogger("healthplane.aggregator.dns.consumer")


class SnapshotFeed:
    """The freshest :class:`Snapshot`, its listeners and its readers."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._listeners: list[Callable[[Snapshot], object]] = []
        self._readers: set[LatestSlot[Snapshot]] = set()
        self.accepted = 0           # snapshots adopted

    @property
    def snapshot(self) -> Snapshot | None:
        """The freshest snapshot, or None before the first one."""
        return self._snapshot

    def status(self, check_id: str) -> int:
        """A check's state in the freshest snapshot; UNKNOWN before any."""
        snap = self._snapshot
        return UNKNOWN if snap is None else snap.status(check_id)

    def add_listener(self, callback: Callable[[Snapshot], object]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` for every adopted snapshot; returns an unsubscriber."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    async def updates(self) -> AsyncGenerator[Snapshot, None]:
        """Yield the freshest snapshot each time it changes; a slow reader skips, never queues."""
        slot: LatestSlot[Snapshot] = LatestSlot()
        if self._snapshot is not None:
            slot.put(self._snapshot)
        self._readers.add(slot)
        try:
            while (snap := await slot.take()) is not None:
                yield snap
        finally:
            self._readers.discard(slot)

    async def wait_for_snapshot(self, timeout: float | None = None) -> Snapshot:
        """Wait until a snapshot is available (TimeoutError after timeout seconds)."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the snapshot does.
        async with asyncio.timeout(timeout), aclosing(self.updates()) as updates:
            async for snap in updates:
                return snap
        raise RuntimeError("unreachable: updates() never ends")

    def _publish(self, snap: Snapshot) -> None:
        """Hold snap as the freshest and tell every reader and listener."""
        self._snapshot = snap
        self.accepted += 1
        for reader in self._readers:
            reader.put(snap)
        for cb in list(self._listeners):
            try:
                cb(snap)
            except Exception:  # a listener's bug must not stop health updates
                log.exception("snapshot listener failed")
