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
into one byte per check, and :meth:`Snapshot.status` is a dict lookup plus an
index, whatever the registry size.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from statistics import median

import grpc
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from healthplane.runtime.backoff import backoff
from healthplane.runtime.clock import Clock, SystemClock
from healthplane.runtime.slot import LatestSlot
from healthplane.runtime.tls import TlsFiles, secure_channel

log = logging.getLogger(__name__)

UNKNOWN, HEALTHY, UNHEALTHY = codec.UNKNOWN, codec.HEALTHY, codec.UNHEALTHY

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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One decoded aggregator health snapshot."""

    source: str                      # HOST:PORT of the aggregator it came from
    registry_version: str
    sequence: int                    # the aggregator's tick number
    generated_unix_ms: int
    check_count: int
    states: bytes                    # one byte per check: 0 unknown, 1 healthy, 2 unhealthy
    index: Mapping[str, int] = field(repr=False)  # check id -> position
    received: float = 0.0            # consumer clock reading when accepted

    def status(self, check_id: str) -> int:
        """The check's state (UNKNOWN for an id this registry does not have)."""
        i = self.index.get(check_id)
        return UNKNOWN if i is None else self.states[i]


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


class HealthConsumer:
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
        self._snapshot: Snapshot | None = None
        self._ids: dict[str, Mapping[str, int]] = {}   # registry version -> index
        self._want_ids = True
        self._periods: list[float] = []
        self._current: str | None = None
        self._listeners: list[Callable[[Snapshot], object]] = []
        self._readers: set[LatestSlot[Snapshot]] = set()
        self._task: asyncio.Task[None] | None = None
        self.switches = 0           # times the consumer moved to another aggregator
        self.malformed = 0          # snapshots dropped as malformed
        self.accepted = 0           # snapshots adopted

    # -- reading ---------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot | None:
        """The freshest snapshot, or None before the first one."""
        return self._snapshot

    def status(self, check_id: str) -> int:
        """A check's state in the freshest snapshot; UNKNOWN before any."""
        snap = self._snapshot
        return UNKNOWN if snap is None else snap.status(check_id)

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
        return median(self._periods) if self._periods else self._default_tick

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
        with_ids = self._want_ids
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
                    if self._want_ids and not with_ids:
                        raise _Reopen()
                    continue      # malformed: counted, and the deadline stands
                last_seq = msg.sequence
                if self._current != src.address:
                    log.info("following aggregator %s (tick %d)", src.address, msg.sequence,
                             extra={"aggregator": src.address, "tick": msg.sequence})
                src.fails = 0
                self._current = src.address
                deadline = self.clock.now() + self._stall_periods * self.tick_period
                if with_ids and not self._want_ids:
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
        version = msg.registry_version
        if msg.check_ids:
            if len(msg.check_ids) != msg.check_count:
                self.malformed += 1
                log.warning("snapshot dropped: check ids do not match check_count",
                            extra={"aggregator": src.address, "check_ids": len(msg.check_ids),
                                   "check_count": msg.check_count})
                return None
            if version not in self._ids:
                # Keep the current and the new version only: a registry change
                # must not grow memory without bound.
                keep: dict[str, Mapping[str, int]] = {
                    version: {cid: i for i, cid in enumerate(msg.check_ids)}}
                held = self._snapshot.registry_version if self._snapshot else None
                if held in self._ids:
                    keep[held] = self._ids[held]
                self._ids = keep
        index = self._ids.get(version)
        if index is None:
            self._want_ids = True
            return None
        if len(index) != msg.check_count:
            self.malformed += 1
            return None
        try:
            states = codec.decode(msg.states, msg.check_count).tobytes()
        except codec.SnapshotError as exc:
            self.malformed += 1
            log.warning("malformed snapshot dropped", extra={
                "aggregator": src.address, "tick": msg.sequence, "error": str(exc)})
            return None
        self._want_ids = False
        now = self.clock.now()
        prev = self._snapshot
        if self._fixed_tick is None and prev is not None and prev.source == src.address \
                and last_seq >= 0 and msg.sequence > prev.sequence:
            period = (msg.generated_unix_ms - prev.generated_unix_ms) / 1000.0 \
                / (msg.sequence - prev.sequence)
            if 0.001 <= period <= 3600:
                self._periods = (self._periods + [period])[-9:]
        snap = Snapshot(
            source=src.address, registry_version=version, sequence=msg.sequence,
            generated_unix_ms=msg.generated_unix_ms, check_count=msg.check_count,
            states=states, index=index, received=now)
        self._snapshot = snap
        self.accepted += 1
        for reader in self._readers:
            reader.put(snap)
        for cb in list(self._listeners):
            try:
                cb(snap)
            except Exception:  # a listener's bug must not stop health updates
                log.exception("snapshot listener failed")
        return snap

    async def _close_channel(self, src: _Source) -> None:
        # A fresh channel per attempt: grpc's own reconnect backoff (up to
        # 120 s) would otherwise override ours after a peer comes back.
        channel, src.channel = src.channel, None
        if channel is not None:
            await channel.close()
