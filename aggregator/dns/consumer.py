"""The health consumer a DNS host embeds: the freshest aggregator snapshot in memory.

:class:`HealthConsumer` watches one aggregator at a time over ``Health.Watch``
and keeps the latest :class:`Snapshot`. It moves to the next aggregator of its
list when the current one fails (the stream ends or errors) or falls behind
(no new tick for ``stall_periods`` tick periods), and retries failed
aggregators with capped exponential backoff and full jitter, each on its own
schedule, so one dead aggregator never delays switching to a live one.

It never goes empty. With no aggregator reachable it keeps serving the last
snapshot and reports its age (:meth:`HealthConsumer.age`); the caller decides
when that is too old (the DNS front then fails open). Before the first
snapshot every check is unknown.

Snapshots an aggregator marks ``warming`` (it has just started and not yet
heard the fleet) are never adopted: the consumer moves on to another
aggregator and comes back a tick later, so it follows a warm one whenever
there is one.

Check ids travel only when needed: the first subscription asks for them
(``include_check_ids``); once they are known for a registry version the
consumer resubscribes without them, and asks again only when a snapshot names
a registry version whose ids it does not know. Each snapshot is decoded once,
into one byte per check (:mod:`.snapshots`), and :meth:`Snapshot.status` is a
dict lookup plus an index, whatever the registry size.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import grpc
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.backoff import backoff
from healthplane.runtime.clock import Clock, SystemClock
from healthplane.runtime.tls import TlsFiles, secure_channel

from .feed import SnapshotFeed
from .snapshots import Snapshot, SnapshotDecoder

__all__ = ["HealthConsumer", "Snapshot"]

log = logging.getLogger(__name__)

# A million-check registry with its ids is ~10 MB; gRPC's 4 MB default would
# refuse it.
_MAX_MESSAGE = 64 * 1024 * 1024
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # Each channel its own subchannel: a fresh one must not inherit the
    # reconnect backoff of the channel that just failed to the same address.
    ("grpc.use_local_subchannel_pool", 1),
)


class _Source:
    """Reconnect bookkeeping for one aggregator address."""

    __slots__ = ("address", "fails", "not_before", "channel")

    def __init__(self, address: str) -> None:
        self.address = address
        self.fails = 0
        self.not_before = 0.0
        self.channel: grpc.aio.Channel | None = None


class _Reopen(Exception):
    """End the current stream and subscribe again at once (ids needed or no longer)."""


class _Warming(Exception):
    """The aggregator is warming up after its start: look for a warm one meanwhile."""


class HealthConsumer(SnapshotFeed):
    """Watches aggregators and keeps the freshest health snapshot.

    Use as ``async with HealthConsumer([...]) as consumer:`` or call
    :meth:`start` / :meth:`stop`. ``tick`` fixes the aggregator tick period;
    when None it is learned from consecutive snapshots (``default_tick``
    until two have arrived). ``clock`` (a :class:`~healthplane.runtime.clock.Clock`)
    and ``rng`` (for the reconnect jitter) are injectable for tests.
    """

    def __init__(
        self,
        aggregators: Sequence[str],
        *,
        tick: float | None = None,
        default_tick: float = 1.0,
        stall_periods: float = 2.0,
        connect_timeout: float = 2.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        if not aggregators:
            raise ValueError("at least one aggregator address is needed")
        self._sources = [_Source(a) for a in aggregators]
        self._tls = tls   # each new channel uses the files as last read
        self._fixed_tick = tick
        self._default_tick = default_tick
        self._stall_periods = stall_periods
        self._connect_timeout = connect_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self.clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        super().__init__()
        self._decoder = SnapshotDecoder()
        self._current: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.switches = 0           # times the consumer moved to another aggregator

    # -- reading (and :class:`~.feed.SnapshotFeed`'s) ----------------------

    def age(self) -> float | None:
        """Seconds since the freshest snapshot arrived, or None before any."""
        snap = self._snapshot
        return None if snap is None else max(0.0, self.clock.now() - snap.received)

    @property
    def current(self) -> str | None:
        """The aggregator whose stream is delivering ticks now, or None."""
        return self._current

    @property
    def tick_period(self) -> float:
        """The aggregator tick period in seconds: fixed, learned or default."""
        if self._fixed_tick is not None:
            return self._fixed_tick
        return self._decoder.period(self._default_tick)

    @property
    def malformed(self) -> int:
        """Snapshots dropped as malformed."""
        return self._decoder.malformed

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="health-consumer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Bounded: a gRPC call that ignores cancellation must not hang shutdown.
            await asyncio.wait({task}, timeout=5.0)
        for src in self._sources:
            await self._close_channel(src)
        self._current = None

    async def __aenter__(self) -> HealthConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the watch loop --------------------------------------------------

    def _pick(self, after: int) -> int:
        """Index of the next source to try: earliest allowed, round-robin on ties."""
        n = len(self._sources)
        order = [(after + 1 + k) % n for k in range(n)]
        return min(order, key=lambda i: self._sources[i].not_before)

    async def _run(self) -> None:
        last = -1
        reopen = False
        while True:
            i = last if reopen else self._pick(last)
            reopen = False
            src = self._sources[i]
            await self.clock.sleep_until(src.not_before)
            if last >= 0 and i != last:
                self.switches += 1
            last = i
            try:
                await self._watch(src)
                reason = "stream ended"
            except _Reopen:
                reopen = True
                continue
            except _Warming:
                # Not a failure: it is alive and will be warm within one
                # stale_after. Try the others first, and this one again a
                # tick later, on the same channel.
                self._current = None
                src.not_before = self.clock.now() + self.tick_period
                log.debug("aggregator %s is warming up", src.address)
                continue
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                reason = f"no new tick for {self._stall_periods:g} tick periods"
            except grpc.aio.AioRpcError as exc:
                reason = f"{exc.code().name}: {exc.details()}"
            except Exception as exc:  # noqa: BLE001 - any failure means: try the next one
                reason = f"{type(exc).__name__}: {exc}"
            self._current = None
            await self._close_channel(src)
            delay = backoff(src.fails, self._backoff_base, self._backoff_cap, self._rng)
            src.fails += 1
            src.not_before = self.clock.now() + delay
            # Loud once per outage, quiet while retrying a peer that stays down.
            log.log(logging.WARNING if src.fails == 1 else logging.DEBUG,
                    "aggregator %s lost; retrying", src.address,
                    extra={"aggregator": src.address, "reason": reason,
                           "retry_s": round(delay, 3)})

    async def _watch(self, src: _Source) -> None:
        if src.channel is None:
            src.channel = secure_channel(src.address, self._tls, _CHANNEL_OPTIONS)
        stub = pb_grpc.HealthStub(src.channel)
        decoder = self._decoder
        with_ids = decoder.want_ids
        call = stub.Watch(pb.WatchRequest(include_check_ids=with_ids))
        try:
            # The first message may take a connect plus a tick; later ones a tick each.
            deadline = (self.clock.now() + self._connect_timeout
                        + self._stall_periods * self.tick_period)
            last_seq = -1
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that races with a message, and stop() would hang.
                async with asyncio.timeout(max(0.0, deadline - self.clock.now())):
                    msg = await call.read()
                if msg is grpc.aio.EOF:
                    return
                if msg.warming:
                    # A warming snapshot may say "never seen, healthy" about
                    # an endpoint the fleet knows dead: never adopted.
                    raise _Warming()
                if msg.sequence <= last_seq or self._is_repeat(src, msg):
                    # A repeat is not a new tick: the deadline stands.
                    last_seq = max(last_seq, msg.sequence)
                    continue
                snap = self._adopt(src, msg, last_seq)
                if snap is None:
                    if decoder.want_ids and not with_ids:
                        raise _Reopen()
                    continue      # malformed: counted, and the deadline stands
                last_seq = msg.sequence
                if self._current != src.address:
                    log.info("following aggregator %s (tick %d)", src.address, msg.sequence,
                             extra={"aggregator": src.address, "tick": msg.sequence})
                src.fails = 0
                self._current = src.address
                deadline = self.clock.now() + self._stall_periods * self.tick_period
                if with_ids and not decoder.want_ids:
                    raise _Reopen()   # ids known: stop paying for them every tick
        finally:
            call.cancel()

    def _is_repeat(self, src: _Source, msg: pb.HealthSnapshot) -> bool:
        """The tick we already hold, resent on a new subscription."""
        snap = self._snapshot
        return (snap is not None and snap.source == src.address
                and snap.sequence == msg.sequence
                and snap.generated_unix_ms == msg.generated_unix_ms
                and snap.registry_version == msg.registry_version)

    def _adopt(self, src: _Source, msg: pb.HealthSnapshot, last_seq: int) -> Snapshot | None:
        """Validate and decode one message; publish it. None when unusable."""
        snap = self._decoder.decode(src.address, msg, self._snapshot, self.clock.now(),
                                    learn=self._fixed_tick is None and last_seq >= 0)
        if snap is not None:
            self._publish(snap)
        return snap

    async def _close_channel(self, src: _Source) -> None:
        # A fresh channel per attempt: grpc's own reconnect backoff (up to
        # 120 s) would otherwise override ours after a peer comes back.
        channel, src.channel = src.channel, None
        if channel is not None:
            await channel.close()
