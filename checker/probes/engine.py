"""The compiled probe engine: which probes it runs, and its verdicts as text.

``healthplane.checker._engine`` (C, ``checker/engine/``) runs plain http and
tcp probes in batches on its own epoll set: the dispatcher adds each check
once and hands it the ids of the due ones; verdicts come back as arrays
(outcome, reason code, latency), with no Python object per probe. It keeps
every rule of the pure-Python probers: one attempt, one deadline, a reset on
close, the same status table, search, header bound and send/expect, and it
parses responses with llhttp, the parser httptools wraps, so both paths give
the same verdict on the same bytes.

It takes a check only when everything about it is fixed when the prober is
built: an IP literal the target policy allowed (a refused literal, or one of
the wrong ``ip_family``, fails at once on the Python path without a socket),
no TLS. Names (resolved per probe, cached), https, grpc and dns stay on the
Python probers. The choice is made once at start
(:func:`healthplane.runtime.native.load`; ``HEALTHPLANE_PURE_PYTHON=1``
forces the Python path) and logged as "probe engine: compiled|python".

:class:`EngineProber` wraps such a prober: the dispatcher batches it through
the engine (see :mod:`healthplane.checker.batch`), and called alone it runs
one probe on a per-loop engine, so every probe test runs on both paths.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from functools import lru_cache
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from healthplane.runtime import native

from .base import Outcome, Prober, ProbeResult
from .http import HEADER_LIMIT, HttpProber
from .tcp import TcpProber

COMPILED: ModuleType | None = native.load("healthplane.checker._engine")
"""The compiled engine, or None when not built or forced off."""

engine: ModuleType | None = COMPILED
"""The engine new probers use; tests switch it to run both paths."""

_KIND_CONNECT, _KIND_TALK, _KIND_HTTP = 0, 1, 2
_FIXED = ("ok", "timeout", "refused", "reset", "closed", "unreachable", "bad response",
          "search string missing", f"headers over {HEADER_LIMIT} bytes",
          "expect string missing", "cancelled")


def path() -> str:
    """"compiled" or "python": which path new probers take."""
    return native.path_name(engine)


@lru_cache(maxsize=4096)
def reason_text(code: int) -> str:
    """The engine's reason code as the Python probers would word it."""
    if 0 <= code < len(_FIXED):
        return _FIXED[code]
    if 1000 <= code < 2000:
        return f"status {code - 1000}"
    if code >= 2000:
        return f"connect error: {os.strerror(code - 2000).lower()}"
    return "probe error"


class Spec(NamedTuple):
    """What the engine needs to probe one check: where (ip, port, host) and
    how (the rest, which checks probed alike share).

    host is the Host header's value, kept out of ``out`` (the request
    without it) and put back at ``host_at`` per probe: with it in, every
    check would need a request of its own.
    """

    ip: str
    port: int
    host: bytes
    timeout: float
    kind: int
    out: bytes | None
    needle: bytes | None
    statuses: bytes | None
    host_at: int

    @property
    def how(self) -> tuple:
        """Engine.spec's arguments."""
        return (self.timeout, self.kind, self.out, self.needle, self.statuses, self.host_at)

    def add_to(self, engine: Any) -> int:
        """Add as a target of a spec of its own; the probe id."""
        return int(engine.add(self.ip, self.port, *self.how[:5], self.host_at, self.host))


_HOST = b"\r\nHost: "


def spec_of(prober: object) -> Spec | None:
    """The engine's spec for a prober it can run, else None."""
    if not isinstance(prober, (HttpProber, TcpProber)):
        return None
    resolved = prober.resolved
    if resolved is None or resolved.ip is None or prober.ssl_context is not None:
        return None
    if isinstance(prober, HttpProber):
        request = prober.request
        # The request line cannot hold a line break, so the first one
        # followed by "Host: " starts the Host header (see build_request).
        at = request.index(_HOST) + len(_HOST)
        end = request.index(b"\r\n", at)
        return Spec(resolved.ip, prober.port, request[at:end], prober.timeout, _KIND_HTTP,
                    request[:at] + request[end:], prober.needle, prober.statuses, at)
    kind = _KIND_CONNECT if prober.send is None and prober.expect is None else _KIND_TALK
    return Spec(resolved.ip, prober.port, b"", prober.timeout, kind, prober.send, prober.expect,
                None, -1)


def wrap(prober: Prober) -> Prober:
    """prober, run by the engine when there is one and it can."""
    if engine is None:
        return prober
    spec = spec_of(prober)
    return prober if spec is None else EngineProber(prober, spec)


class _Runner:
    """One engine per event loop for probes called one by one."""

    def __init__(self, mod: ModuleType, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = mod.Engine()
        self.waiters: dict[int, asyncio.Future[ProbeResult]] = {}
        # Engine ids free per spec: each call has its own, so calls of one
        # prober that overlap never end each other, and ids are reused.
        self.free: dict[Spec, list[int]] = {}
        n = 64
        self._out = (np.empty(n, np.int64), np.empty(n, np.int8), np.empty(n, np.int32),
                     np.empty(n, np.float64))
        # The loop keeps the runner alive through the reader, not the reverse,
        # so a closed loop and its runner are freed together.
        loop.add_reader(self.engine.fileno(), self.ready)

    def ready(self) -> None:
        self.engine.poll()
        ids, outcomes, codes, latencies = self._out
        while (n := self.engine.drain(*self._out)) > 0:
            for i in range(n):
                fut = self.waiters.pop(int(ids[i]), None)
                if fut is not None and not fut.done():
                    fut.set_result(ProbeResult(Outcome(int(outcomes[i])), float(latencies[i]),
                                               reason_text(int(codes[i]))))

    async def probe(self, spec: Spec) -> ProbeResult:
        free = self.free.setdefault(spec, [])
        eid = free.pop() if free else spec.add_to(self.engine)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[eid] = fut
        try:
            if self.engine.start(eid):
                self.ready()
            return await fut
        finally:
            if self.waiters.pop(eid, None) is not None:
                self.engine.cancel(eid)     # cancelled: close it, no result
            free.append(eid)


_RUNNERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Runner] = (
    weakref.WeakKeyDictionary())


class EngineProber:
    """A tcp or http prober whose probes the compiled engine runs."""

    __slots__ = ("inner", "spec", "mod")

    def __init__(self, inner: Prober, spec: Spec) -> None:
        self.inner = inner
        self.spec = spec
        self.mod = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def __call__(self) -> ProbeResult:
        loop = asyncio.get_running_loop()
        runner = _RUNNERS.get(loop)
        if runner is None:
            assert self.mod is not None
            runner = _RUNNERS[loop] = _Runner(self.mod, loop)
        return await runner.probe(self.spec)
