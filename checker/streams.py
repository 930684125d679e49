"""One long-lived Ingest.Report stream per aggregator, latest snapshot wins.

Each aggregator gets its own :class:`AggregatorStream` with a one-snapshot
slot. The reporter drops the newest snapshot into every slot and moves on;
a stream task takes it out and writes it. A snapshot not yet sent when the
next one arrives is replaced (and counted), so a slow or dead aggregator
holds at most one snapshot of memory and never delays the probes or the
other aggregators. Broken streams are reopened, on a fresh channel, after
:func:`~healthplane.runtime.backoff.backoff` (capped exponential, full
jitter).

Rollouts: an aggregator ends a stream cleanly, with the registry versions it
accepts in the ReportSummary, when a snapshot names a version it does not
know or when it adopted a new registry. The stream remembers that list and
reopens at once; while the checker's current version is not on it, it
sends the checker's snapshot remapped onto the previous registry (the
``fallback`` the reporter offers), so an aggregator that has not seen the
new checks.yaml yet keeps every vote of the checks both registries have.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import grpc
from healthplane.checker.metrics import CheckerMetrics
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.backoff import backoff
from healthplane.runtime.clock import Clock
from healthplane.runtime.slot import LatestSlot
from healthplane.runtime.tls import TlsFiles, secure_channel

log = logging.getLogger("healthplane.checker")

# Its own subchannel, so a fresh channel does not inherit the reconnect
# backoff of one that just failed to the same address.
_CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)

# The shortest pause before reopening a stream the aggregator ended cleanly.
REOPEN_DELAY = 0.01

Fallback = Callable[[], pb.CheckerSnapshot]
Offer = tuple[pb.CheckerSnapshot, Fallback | None, float]   # and when it was offered


class AggregatorStream:
    """The Report stream to one aggregator at `address` (HOST:PORT)."""

    def __init__(self, address: str, *, clock: Clock, metrics: CheckerMetrics,
                 rng: random.Random | None = None, base: float = 0.2, cap: float = 10.0,
                 write_timeout: float = 5.0, tls: TlsFiles | None = None,
                 max_age: float | None = None) -> None:
        self.address = address
        self.tls = tls
        self.clock = clock
        self.rng = rng or random.Random()
        self.base = base
        self.cap = cap
        self.write_timeout = write_timeout
        # A snapshot not sent within max_age of being offered (the process
        # was stopped, the VM paused) is dropped: sent after the pause it
        # would arrive fresh with verdicts from before it.
        self.max_age = max_age
        self.expired = 0
        self._slot: LatestSlot[Offer] = LatestSlot()
        self._taken: Offer | None = None
        # Registry versions the aggregator said it accepts; None: not told yet.
        self.accepted: tuple[str, ...] | None = None
        self._sent = metrics.snapshots_sent.labels(address)
        self._replaced = metrics.snapshots_replaced.labels(address)
        self._reconnects = metrics.stream_reconnects.labels(address)
        self._connected = metrics.stream_connected.labels(address)
        self._connected.set(0)
        self.connected = False      # a snapshot went through the open stream
        self.sent = 0
        self.opened = 0

    def offer(self, snapshot: pb.CheckerSnapshot, fallback: Fallback | None = None) -> None:
        """Put the newest snapshot in the slot, replacing an unsent one.

        fallback, when given, builds the same report on the previous registry,
        for an aggregator that does not accept snapshot's version yet.
        """
        if self._slot.put((snapshot, fallback, self.clock.now())):
            self._replaced.inc()

    def _pick(self, offer: Offer) -> pb.CheckerSnapshot:
        snapshot, fallback, _ = offer
        accepted = self.accepted
        if accepted is None or snapshot.registry_version in accepted or fallback is None:
            return snapshot
        older = fallback()
        return older if older.registry_version in accepted else snapshot

    def close(self) -> None:
        self._slot.close()

    async def _take(self, ended: asyncio.Future[None] | None = None
                    ) -> pb.CheckerSnapshot | None:
        """The next snapshot to write; None once closed (a pending one is dropped)
        or once ended is done (the aggregator finished the call meanwhile)."""
        while True:
            if ended is None or self._slot.full:
                offer = await self._slot.take()
            else:
                taker = asyncio.ensure_future(self._slot.take())
                try:
                    await asyncio.wait((taker, ended), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not taker.done():
                        taker.cancel()
                offer = taker.result() if taker.done() and not taker.cancelled() else None
            if offer is None or self._slot.closed:
                return None
            if self.max_age is not None and self.clock.now() - offer[2] > self.max_age:
                self.expired += 1
                continue
            self._taken = offer
            return self._pick(offer)

    async def run(self) -> None:
        """Keep a stream open and writing until close()."""
        attempt = 0
        channel: grpc.aio.Channel | None = None
        try:
            while not self._slot.closed:
                if channel is None:
                    # A fresh channel after every break: on one that keeps
                    # failing, gRPC's own reconnect backoff (growing towards
                    # two minutes) would override ours, and a returning
                    # aggregator would wait that long for its snapshots. With
                    # TLS it also picks up rotated certificate files.
                    channel = secure_channel(self.address, self.tls, _CHANNEL_OPTIONS)
                    stub = pb_grpc.IngestStub(channel)
                call = stub.Report()
                ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                call.add_done_callback(
                    lambda _call, f=ended: f.done() or f.set_result(None))
                self.opened += 1
                if self.opened > 1:
                    self._reconnects.inc()
                written = 0
                snapshot: pb.CheckerSnapshot | None = None
                told = False
                try:
                    while True:
                        snapshot = await self._take(ended)
                        if snapshot is None and call.done() and not self._slot.closed:
                            told = await self._told(call)
                            if told:
                                break
                            raise RuntimeError("stream ended")
                        if snapshot is None:
                            await call.done_writing()
                            return
                        # asyncio.timeout, not wait_for: on Python 3.11 wait_for
                        # can swallow a cancellation that races with the write
                        # completing, and the checker's shutdown (which cancels
                        # this task and waits for it) would hang.
                        async with asyncio.timeout(self.write_timeout):
                            await call.write(snapshot)
                        snapshot = None
                        written += 1
                        self.sent += 1
                        self._sent.inc()
                        if written == 1:
                            self._connected.set(1)
                            self.connected = True
                            log.info("stream open", extra={"aggregator": self.address})
                        elif written == 2:
                            # Two writes through: the stream works; start
                            # backoff afresh next time it breaks.
                            attempt = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # grpc errors, write timeout, finished call
                    told = call.done() and await self._told(call)
                    # Say it once per outage, not once per retry.
                    level = logging.INFO if written or attempt == 0 else logging.DEBUG
                    if not told and log.isEnabledFor(level):
                        log.log(level, "stream broken", extra={
                            "aggregator": self.address, "error": await _why(exc, call)})
                finally:
                    self._connected.set(0)
                    self.connected = False
                    call.cancel()
                if snapshot is not None and self._taken is not None:
                    self._slot.put_back(self._taken)   # not sent: keep it as the latest
                if told:
                    # A clean end that named the versions to use: reopen at
                    # once on the same channel (the server only ends a stream
                    # after a message, so this cannot spin).
                    await self.clock.sleep_until(self.clock.now() + REOPEN_DELAY)
                    continue
                broken, channel = channel, None
                await broken.close(grace=None)
                delay = backoff(attempt, self.base, self.cap, self.rng)
                attempt += 1
                await self.clock.sleep_until(self.clock.now() + delay)
        finally:
            if channel is not None:
                await channel.close(grace=None)


    async def _told(self, call: grpc.aio.StreamUnaryCall) -> bool:
        """Whether a finished call ended cleanly; learns the versions it named."""
        try:
            if await call.code() != grpc.StatusCode.OK:
                return False
            summary = await call
        except Exception:  # noqa: BLE001 - any doubt: treat it as broken
            return False
        versions = tuple(summary.registry_versions)
        if versions and versions != self.accepted:
            self.accepted = versions
            log.info("registry versions", extra={"aggregator": self.address,
                                                  "registry_versions": ",".join(versions)})
        return True


async def _why(exc: BaseException, call: grpc.aio.StreamUnaryCall) -> str:
    """A short reason: the call's status when it has one, else the exception."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, TimeoutError):
        return "write timed out"
    if call.done():
        # Writing to a call that already failed raises InvalidStateError;
        # the call's own status says why it failed.
        try:
            return f"{(await call.code()).name}: {await call.details()}"
        except Exception:  # pragma: no cover - status unavailable
            pass
    return f"{type(exc).__name__}: {exc}"
