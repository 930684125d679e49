"""``--snapshot-file PATH``: each tick's health snapshot as one msgpack map on disk.

For DNS servers that read a file rather than speak gRPC. The file is
replaced atomically at every tick (written to a temporary file in the same
directory, then ``os.replace``), so a reader sees either the previous
snapshot or the new one, never a mix. Format, one msgpack map::

    registry_version   str    content hash of checks.yaml
    sequence           int    tick number; only grows
    generated_unix_ms  int    when the tick was computed (ms since the epoch)
    check_count        int    number of checks
    states             bin    2 bits per check, the snapshot layout of
                              proto/healthplane.proto (check i in bits 2i,
                              2i+1, most significant first; 00 unknown,
                              01 healthy, 10 unhealthy)
    check_ids          array  of str, check ids in registry order

Read it with ``msgpack.unpackb(data, raw=False)`` and decode ``states`` with
``proto.codec.decode(states, check_count)``. The file is not fsynced: the
point is that readers never see a torn file, not durability across a power
cut (the next tick rewrites it anyway).

Writes run in a worker thread with a latest-value slot: if the disk is
slower than the tick, intermediate ticks are skipped (and counted) rather
than queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from typing import Any

import msgpack
from healthplane.aggregator.tick_result import TickResult
from healthplane.proto.config.model import Registry

from healthplane.runtime.slot import LatestSlot

log = logging.getLogger("healthplane.aggregator.snapshot_file")


class _IdsCache:
    """check_ids packed once per registry: at a million checks it is most of the file."""

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._packed = b""

    def get(self, registry: Registry) -> bytes:
        if registry is not self._registry:
            self._packed = msgpack.packb(list(registry.ids), use_bin_type=True)
            self._registry = registry
        return self._packed


def encode_snapshot(pub: TickResult, ids_cache: _IdsCache | None = None) -> bytes:
    """The file's bytes for one tick."""
    reg = pub.registry
    packed_ids = (ids_cache or _IdsCache()).get(reg)
    packer = msgpack.Packer(use_bin_type=True)
    head = b"".join((
        packer.pack_map_header(6),
        packer.pack("registry_version"), packer.pack(reg.version),
        packer.pack("sequence"), packer.pack(pub.sequence),
        packer.pack("generated_unix_ms"), packer.pack(pub.generated_unix_ms),
        packer.pack("check_count"), packer.pack(reg.check_count),
        packer.pack("states"), packer.pack(pub.states),
        packer.pack("check_ids"),
    ))
    return head + packed_ids


def write_atomically(path: str, data: bytes) -> None:
    """Replace path with data so that no reader ever sees a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; DNS readers may run as another user
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_snapshot_file(path: str) -> dict[str, Any]:
    """Load a snapshot file (for readers and tests)."""
    with open(path, "rb") as f:
        return msgpack.unpackb(f.read(), raw=False)


class SnapshotFileWriter:
    """Writes the latest tick to path off the event loop, never queueing ticks."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written = 0
        self.failed = 0
        self.skipped = 0
        self._slot: LatestSlot[TickResult] = LatestSlot()
        self._ids = _IdsCache()
        self._task: asyncio.Task[None] | None = None
        self._last_error = ""
        self._busy = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="snapshot-file")

    def submit(self, pub: TickResult) -> None:
        if self._slot.put(pub):
            self.skipped += 1

    async def _run(self) -> None:
        # One write at a time, in tick order: a later tick can never be
        # overwritten on disk by an earlier one finishing late.
        while (pub := await self._slot.take()) is not None:
            self._busy = True
            try:
                await self._write(pub)
            finally:
                self._busy = False

    async def _write(self, pub: TickResult) -> None:
        try:
            await asyncio.to_thread(write_atomically, self.path, encode_snapshot(pub, self._ids))
        except OSError as exc:
            self.failed += 1
            error = str(exc.strerror or exc)
            if error != self._last_error:  # once per distinct error, not once per tick
                log.error("cannot write snapshot file", extra={"path": self.path, "error": error})
                self._last_error = error
        else:
            self.written += 1
            self._last_error = ""

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the latest submitted tick is on disk (or failed), up to timeout."""
        if self._task is None:
            if (pub := self._slot.take_nowait()) is not None:
                await self._write(pub)
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._slot.full or self._busy) and not self._task.done():
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        if self._task is None:
            await self.flush()
            return
        self._slot.close()          # the pending tick is still written
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
