"""The dispatcher with the compiled engine on the real clock: starts it times itself.

When the engine runs every row, whole windows are handed to it and it starts
each probe at its slot; the dispatcher's rules must hold all the same: each
check once per interval, one connection per probe, no slot started later
than its bound (too late is missed, never run late), results folded into
verdicts. Mixed dispatchers (some rows on the Python probers) batch the
engine's rows per wake-up instead.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from healthplane.checker.dispatch import Dispatcher
from healthplane.checker.probes import engine, make_prober
from healthplane.checker.probes.base import Outcome
from healthplane.proto.config.model import Check

from healthplane.runtime.clock import SystemClock
from tests.checker.helpers import until

pytestmark = [pytest.mark.timeout(60), pytest.mark.skipif(engine.COMPILED is None,
                                                          reason="the engine is not built")]


class Listener:
    """Accepts and counts connections (the probes are tcp connects)."""

    def __init__(self) -> None:
        self.connections = 0

    async def __aenter__(self) -> Listener:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()
        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def dispatcher(checks: list[Check], lateness: list[np.ndarray]) -> Dispatcher:
    n = len(checks)
    return Dispatcher(ids=[c.id for c in checks],
                      probers=[make_prober(c, allow_private=True) for c in checks],
                      intervals=np.array([c.interval for c in checks]),
                      timeouts=np.array([c.timeout for c in checks]),
                      thresholds=np.ones(n, dtype=np.uint8), kinds=np.zeros(n, dtype=np.int64),
                      checker_id="t", clock=SystemClock(), observe_lateness=lateness.append)


def tcp(i: int, port: int, host: str = "127.0.0.1") -> Check:
    return Check(id=f"c{i}", type="tcp", host=host, port=port, interval=1.0, timeout=0.5)


@pytest.fixture(autouse=True)
def compiled_path():
    saved = engine.engine
    engine.engine = engine.COMPILED
    yield
    engine.engine = saved


async def test_planned_starts_keep_the_schedule_and_one_connection_per_probe() -> None:
    async with Listener() as srv:
        lateness: list[np.ndarray] = []
        d = dispatcher([tcp(i, srv.port) for i in range(100)], lateness)
        assert d._planned
        start = time.monotonic()
        run = asyncio.create_task(d.run(start))
        await asyncio.sleep(2.6)
        # Slots due in the last moments may still wait for their coalesced timer.
        slots = d.schedule.count_slots(start, time.monotonic() - 0.05)
        d.flush()
        d.stop()
        await run
        assert d.missed == 0
        # Every slot up to now was started (the engine may have started the
        # few of the next 1/10 s it was handed), each exactly once.
        assert slots <= d.launched <= slots + 20
        await until(lambda: srv.connections >= d.finished)
        assert d.finished <= d.launched <= srv.connections + 20
        assert set(d.outcomes.tolist()) == {int(Outcome.OK)}
        late = np.concatenate(lateness)
        assert late.size == d.launched
        assert late.min() >= 0 and late.max() <= d.late_bound.max()


async def test_the_planned_queue_holds_only_starts_not_yet_launched() -> None:
    """Each window is handed over before the last has run out, so the queue is
    never empty when one is added: it must still not keep launched starts,
    or a checker's memory grows by every probe it ever planned."""
    async with Listener() as srv:
        d = dispatcher([tcp(i, srv.port) for i in range(300)], [])
        assert d._planned and d._batch is not None
        run = asyncio.create_task(d.run())
        await asyncio.sleep(5.3)
        d.stop()
        await run
        assert d.launched >= 4 * 300
        # One window (300 starts) and the part of the next planned early
        # fit in 512; keeping every start would need 2,048.
        assert d._batch.engine.plan_capacity <= 512


def test_checks_probed_alike_share_one_spec_in_the_engine() -> None:
    checks = [tcp(i, 8000 + i % 7) for i in range(50)] + [
        Check(id=f"h{i}", type="http", host=f"127.0.0.{1 + i}", port=8080,
              hostname=None if i % 2 else f"site{i}.example", interval=1.0, timeout=0.5)
        for i in range(6)]
    d = dispatcher(checks, [])
    assert d._batch is not None
    # One tcp connect, one http request: the Host values, all different,
    # are kept per check apart from the request they share.
    assert d._batch.engine.specs == 2
    assert all(p is None for p in d._probers)  # the engine holds them; no object per row


async def test_a_stalled_loop_skips_slots_instead_of_running_them_late() -> None:
    async with Listener() as srv:
        lateness: list[np.ndarray] = []
        d = dispatcher([tcp(i, srv.port) for i in range(100)], lateness)
        start = time.monotonic()
        run = asyncio.create_task(d.run(start))
        await asyncio.sleep(0.2)
        time.sleep(1.3)            # the whole loop stalls, the engine's timer with it
        await asyncio.sleep(1.0)
        d.flush()
        d.stop()
        await run
        assert d.missed > 0
        late = np.concatenate(lateness)
        assert late.max() <= d.late_bound.max()   # late by more than the bound: missed


async def test_mixed_rows_batch_the_engine_and_task_the_rest() -> None:
    async with Listener() as srv:
        checks = [tcp(i, srv.port) for i in range(20)] + [tcp(99, srv.port, host="localhost")]
        d = dispatcher(checks, [])
        assert d._batch is not None and not d._planned
        assert d._batch.mask.sum() == 20
        run = asyncio.create_task(d.run())
        await until(lambda: (d.flush() or True) and bool((d.outcomes >= 0).all()))
        d.stop()
        await run
        assert set(d.outcomes.tolist()) == {int(Outcome.OK)}


def test_an_answer_read_long_after_the_deadline_is_a_timeout() -> None:
    """As the dispatcher rules for the Python probers: read after a stall, it is old."""
    import select
    import socket
    import threading

    mod = engine.COMPILED
    assert mod is not None
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            conn.close()
    threading.Thread(target=answer, daemon=True).start()
    table = bytes(200) + b"\x01" * 200 + bytes(600)
    e = mod.Engine()
    e.configure(10, 0.0, 0.1)
    eid = e.add("127.0.0.1", port, 0.2, mod.HTTP, b"GET / HTTP/1.1\r\n\r\n", None, table)
    out = (np.empty(4, np.int64), np.empty(4, np.int8), np.empty(4, np.int32),
           np.empty(4, np.float64))
    verdicts = []
    for stall in (0.0, 0.5):
        e.start(eid)
        time.sleep(stall)           # the process "stopped" with the answer in its buffer
        deadline = time.monotonic() + 5
        while e.in_flight and time.monotonic() < deadline:
            select.select([e.fileno()], [], [], 0.05)
            e.poll()
        assert e.drain(*out) == 1
        verdicts.append((int(out[1][0]), engine.reason_text(int(out[2][0]))))
    listener.close()
    assert verdicts == [(int(Outcome.OK), "ok"), (int(Outcome.TIMEOUT), "timeout")]
