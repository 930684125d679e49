"""The dispatcher's rows that the compiled probe engine runs, in batches.

One :class:`EngineBatch` per dispatcher holds an engine with one spec per
engine-capable row (an :class:`~healthplane.checker.probes.engine.EngineProber`),
added once. Starting due rows is one call with an int64 array; the engine's
epoll fd is watched with ``loop.add_reader``, so sockets and deadlines are
handled as they become ready (one ``poll`` per wake-up, however many probes),
and verdicts wait in the engine until the dispatcher's flush drains them as
arrays. No task, future or result object exists per probe.

When every row is the engine's and the clock is the real monotonic one,
the dispatcher hands over whole windows instead (:meth:`EngineBatch.plan`):
the engine starts each probe at its slot from its own timer, applies the
late bound and the concurrency limit itself, and the dispatcher wakes only
to plan the next window and to flush, a few times a second however many
probes there are.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from healthplane.checker.probes.base import NO_CERT, ProbeResult
from healthplane.checker.probes.engine import reason_text

# The dispatcher imports this module, so it is typed loosely here (the
# package keeps its import graph free of circles, type-only imports included).
Dispatcher = Any

_CHUNK = 4096   # results drained per call


class EngineBatch:
    """The engine-run rows of one dispatcher."""

    def __init__(self, engine: object, rows: np.ndarray, ids: np.ndarray) -> None:
        self.engine = engine
        # When the engine runs every row, added in order (the usual case),
        # engine id and dispatcher row are the same number and no table is
        # kept: at 9 bytes a row it would be a twentieth of what a check costs.
        self.every_row = bool(ids.size and rows.size == ids.size
                              and (rows == np.arange(rows.size)).all()
                              and (ids == np.arange(ids.size)).all())
        self._ids: np.ndarray | None = None if self.every_row else ids   # per row: id or -1
        self._rows: np.ndarray | None = None if self.every_row else rows  # per id: row
        self._out = (np.empty(_CHUNK, np.int64), np.empty(_CHUNK, np.int8),
                     np.empty(_CHUNK, np.int32), np.empty(_CHUNK, np.float64))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._now: Callable[[], float] = lambda: 0.0
        # (count, clock time) per group of verdicts the engine produced, in
        # its order: when each was read, for the dispatcher's stall rule.
        self._stamps: deque[list[float]] = deque()
        self._late = np.empty(_CHUNK, np.float64)

    @classmethod
    def build(cls, probers: Iterable[Any]) -> tuple[EngineBatch | None, list[Any]]:
        """The batch of the probers the engine runs (None when there are
        none), and per row the prober to call, None where the engine runs it.

        Probers are taken one at a time and those the engine runs are not
        kept, so a generator never has them all in memory at once.
        """
        kept: list[Any] = []
        rows: list[int] = []
        engine_ids: list[int] = []
        engine = None
        # Checks probed the same way (the same request, text and timeout:
        # most of a registry) share one spec in the engine, so a check
        # costs it only its address.
        specs: dict[tuple, int] = {}
        hosts: dict[bytes, int] = {}     # Host values, each once too
        for row, p in enumerate(probers):
            spec = getattr(p, "spec", None)
            mod = getattr(p, "mod", None)
            if spec is None or mod is None:
                kept.append(p)
                continue
            if engine is None:
                engine = mod.Engine()
            how = spec.how
            sid = specs.get(how)
            if sid is None:
                sid = specs[how] = engine.spec(*how)
            host = hosts.get(spec.host)
            if host is None:
                host = hosts[spec.host] = engine.host(spec.host) if spec.host else 0
            engine_ids.append(engine.target(spec.ip, spec.port, sid, host))
            rows.append(row)
            kept.append(None)
        if engine is None:
            return None, kept
        ids = np.full(len(kept), -1, dtype=np.int32)
        ids[rows] = engine_ids
        return cls(engine, np.asarray(rows, dtype=np.int32), ids), kept

    @property
    def mask(self) -> np.ndarray:
        """Per dispatcher row, whether the engine runs it."""
        if self._ids is None:
            return np.ones(self.engine.targets, dtype=bool)  # type: ignore[attr-defined]
        return self._ids >= 0

    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the rows the engine runs, the others), each in the order given."""
        if self._ids is None:
            return rows, rows[:0]
        mine = self._ids[rows] >= 0
        return rows[mine], rows[~mine]

    def _engine_ids(self, rows: np.ndarray) -> np.ndarray:
        ids = rows if self._ids is None else self._ids[rows]
        return ids.astype(np.int64)

    @property
    def in_flight(self) -> int:
        return int(self.engine.in_flight)  # type: ignore[attr-defined]

    @property
    def pending(self) -> int:
        """Verdicts waiting to be drained."""
        return int(self.engine.pending)  # type: ignore[attr-defined]

    def attach(self, loop: asyncio.AbstractEventLoop, now: Callable[[], float]) -> None:
        """Handle the engine's sockets and deadlines on loop, as they become ready;
        now() stamps when verdicts were read."""
        if self._loop is None:
            self._loop = loop
            self._now = now
            loop.add_reader(self.engine.fileno(), self._ready)  # type: ignore[attr-defined]

    def _ready(self) -> None:
        self._stamp(self.engine.poll())  # type: ignore[attr-defined]

    def _stamp(self, n: int) -> None:
        if n > 0:
            self._stamps.append([n, self._now()])

    def detach(self) -> None:
        """Stop watching, drop every running probe and waiting verdict."""
        if self._loop is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self.engine.fileno())  # type: ignore[attr-defined]
            self._loop = None
        self.engine.stop()  # type: ignore[attr-defined]
        self._stamps.clear()

    def start(self, rows: np.ndarray) -> None:
        """Start one probe for each of these dispatcher rows (all engine rows)."""
        before = self.pending
        self.engine.start(self._engine_ids(rows))  # type: ignore[attr-defined]
        self._stamp(self.pending - before)

    def configure(self, limit: int, coalesce: float, grace: float) -> None:
        """The concurrency bound, how long a timer may wait for company, and the
        grace past a timeout after which a verdict read counts as a timeout."""
        self.engine.configure(limit, coalesce, grace)  # type: ignore[attr-defined]

    def plan(self, times: np.ndarray, rows: np.ndarray, late_bound: np.ndarray) -> None:
        """Start these rows at these times (monotonic seconds, sorted), each at most
        late_bound late (else missed)."""
        before = self.pending
        self.engine.plan(np.round(times * 1e9).astype(np.int64),  # type: ignore[attr-defined]
                         self._engine_ids(rows),
                         np.round(late_bound * 1e9).astype(np.int64))
        self._stamp(self.pending - before)

    def _read_at(self, n: int) -> np.ndarray:
        """When the next n verdicts drained were read (their stamps, consumed)."""
        at = np.empty(n)
        i = 0
        while i < n:
            if not self._stamps:        # not stamped (no loop yet): read now
                at[i:] = self._now()
                break
            group = self._stamps[0]
            take = min(int(group[0]), n - i)
            at[i:i + take] = group[1]
            i += take
            group[0] -= take
            if group[0] <= 0:
                self._stamps.popleft()
        return at

    def take_schedule(self) -> tuple[np.ndarray, int, int]:
        """Planned starts since the last call: their lateness, how many, how many missed."""
        parts, launched, missed = [], 0, 0
        while True:
            n, started, skipped = self.engine.take_schedule(self._late)  # type: ignore[attr-defined]
            launched += started
            missed += skipped
            parts.append(self._late[:n].copy())
            if n < _CHUNK:
                break
        return np.concatenate(parts), launched, missed

    def drain(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
        """Every waiting verdict: dispatcher rows, outcomes, latencies, reasons, read at."""
        parts = []
        while True:
            n = self.engine.drain(*self._out)  # type: ignore[attr-defined]
            if n == 0:
                break
            ids, outcomes, codes, latencies = self._out
            rows = ids[:n].copy() if self._rows is None else self._rows[ids[:n]]
            parts.append((rows, outcomes[:n].astype(np.int64), latencies[:n].copy(),
                          [reason_text(c) for c in codes[:n].tolist()], self._read_at(n)))
            if n < _CHUNK:
                break
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0), [], np.empty(0)
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]), [r for p in parts for r in p[3]],
                np.concatenate([p[4] for p in parts]))


def gather(batch: EngineBatch | None, row_list: list[int], results: list[ProbeResult],
           came: list[float]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Buffered Python results, then the engine's: rows, outcomes, latencies, certs,
    reasons, and when each was read."""
    rows = np.asarray(row_list, dtype=np.int64)
    at = np.asarray(came, dtype=np.float64)
    codes = np.asarray([r.outcome for r in results], dtype=np.int64)
    latencies = np.asarray([r.latency for r in results], dtype=np.float64)
    certs = np.asarray([r.cert_not_after for r in results], dtype=np.float64)
    reasons = [r.reason for r in results]
    if batch is None or not batch.pending:
        return rows, codes, latencies, certs, reasons, at
    e_rows, e_codes, e_latencies, e_reasons, e_at = batch.drain()
    return (np.concatenate([rows, e_rows]), np.concatenate([codes, e_codes]),
            np.concatenate([latencies, e_latencies]),
            np.concatenate([certs, np.full(e_rows.size, NO_CERT)]), reasons + e_reasons,
            np.concatenate([at, e_at]))


async def run_planned(d: Dispatcher, t0: float) -> None:
    """The dispatcher's loop when the engine times every start: hand each window
    over ahead of time (the dispatcher's rules on stalls hold), flush meanwhile."""
    batch = d._batch
    assert batch is not None
    lead = min(0.1, d.window / 2)   # plan this long before the window opens
    max_bound = d.max_late_bound
    while not d._stopped:
        t0 = d.skip_stalled(t0, max_bound)
        t1 = t0 + d.window
        times, rows = d.schedule.slots_in(t0, t1)
        if times.size:
            batch.plan(times, rows, d.late_bound_of(rows))
        while not d._stopped and (now := d.clock.now()) < t1 - lead:
            await d.clock.sleep_until(min(t1 - lead, now + 0.25))
            d.flush()
        d._housekeeping()
        t0 = t1
