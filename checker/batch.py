"""The dispatcher's rows that the compiled probe engine runs, in batches.

One :class:`EngineBatch` per dispatcher holds an engine with one spec per
engine-capable row (an :class:`~healthplane.checker.probes.engine.EngineProber`),
added once. Starting due rows is one call with an int64 array; the engine's
epoll fd is watched with ``loop.add_reader``, so sockets and deadlines are
handled as they become ready (one ``poll`` per wake-up, however many probes),
and verdicts wait in the engine until the dispatcher's flush drains them as
arrays. No task, future or result object exists per probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from healthplane.checker.probes.engine import reason_text

_CHUNK = 4096   # results drained per call


class EngineBatch:
    """The engine-run rows of one dispatcher."""

    def __init__(self, engine: object, rows: np.ndarray, ids: np.ndarray) -> None:
        self.engine = engine
        self.mask = ids >= 0            # per dispatcher row: run by the engine
        self._ids = ids                 # per dispatcher row: engine id, -1 if none
        self._rows = rows               # per engine id: dispatcher row
        self._out = (np.empty(_CHUNK, np.int64), np.empty(_CHUNK, np.int8),
                     np.empty(_CHUNK, np.int32), np.empty(_CHUNK, np.float64))
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def build(cls, probers: Sequence[object]) -> EngineBatch | None:
        """The batch of probers the engine runs; None when there are none."""
        rows: list[int] = []
        mod = None
        for row, p in enumerate(probers):
            spec = getattr(p, "spec", None)
            if spec is not None and getattr(p, "mod", None) is not None:
                mod = p.mod  # type: ignore[attr-defined]
                rows.append(row)
        if mod is None:
            return None
        engine = mod.Engine()
        ids = np.full(len(probers), -1, dtype=np.int64)
        for row in rows:
            ids[row] = engine.add(*probers[row].spec)  # type: ignore[attr-defined]
        return cls(engine, np.asarray(rows, dtype=np.int64), ids)

    @property
    def in_flight(self) -> int:
        return int(self.engine.in_flight)  # type: ignore[attr-defined]

    @property
    def pending(self) -> int:
        """Verdicts waiting to be drained."""
        return int(self.engine.pending)  # type: ignore[attr-defined]

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Handle the engine's sockets and deadlines on loop, as they become ready."""
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self.engine.fileno(), self.engine.poll)  # type: ignore[attr-defined]

    def detach(self) -> None:
        """Stop watching, drop every running probe and waiting verdict."""
        if self._loop is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self.engine.fileno())  # type: ignore[attr-defined]
            self._loop = None
        self.engine.stop()  # type: ignore[attr-defined]

    def start(self, rows: np.ndarray) -> None:
        """Start one probe for each of these dispatcher rows (all engine rows)."""
        self.engine.start(self._ids[rows])  # type: ignore[attr-defined]

    def drain(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Every waiting verdict: dispatcher rows, outcomes, latencies, reasons."""
        parts = []
        while True:
            n = self.engine.drain(*self._out)  # type: ignore[attr-defined]
            if n == 0:
                break
            ids, outcomes, codes, latencies = self._out
            parts.append((self._rows[ids[:n]], outcomes[:n].astype(np.int64), latencies[:n].copy(),
                          [reason_text(c) for c in codes[:n].tolist()]))
            if n < _CHUNK:
                break
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0), []
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]), [r for p in parts for r in p[3]])
