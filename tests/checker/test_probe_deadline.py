"""A probe ends at its deadline whatever phase it is stuck in, on both event loops.

The endpoints here never finish the exchange in three different places:

* the connect never completes: a listener whose accept queue is full, so
  the kernel drops the SYN and the socket sits in SYN_SENT, retransmitting
  (what a target that stopped accepting looks like from the checker);
* the connection opens but the answer never comes (an accepting listener
  that never writes, like bench/blackhole.py);
* many probes at once, so deadlines that fall together are all honoured.

Each probe must come back as a "timeout" result within a small margin of
its timeout, never raise, and never stretch to the kernel's SYN retry
schedule (1 s, 3 s, 7 s ...).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvloop
from healthplane.checker.probes import make_prober
from healthplane.proto.config.model import Check

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("probe_path")]

TIMEOUT = 0.4
# Deadlines are timers on the loop: allow for a busy shared machine, but far
# less than the SYN retransmission a missed deadline would wait for (1 s).
SLACK = 0.35


def check(kind: str, port: int) -> Check:
    return Check(id="x", type=kind, host="127.0.0.1", port=port, path="/health",
                 timeout=TIMEOUT, interval=10.0)


@contextmanager
def full_listener() -> Iterator[int]:
    """A port whose accept queue is full: new connects stay in SYN_SENT."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)                # room for one connection waiting to be accepted
    port = server.getsockname()[1]
    fillers = []
    try:
        # Fill the queue; later SYNs are dropped by the kernel. Fillers may
        # themselves hang in SYN_SENT, which is fine: they are never awaited.
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(s)
        time.sleep(0.05)
        yield port
    finally:
        for s in fillers:
            s.close()
        server.close()


def run_on(loop_kind: str, coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if loop_kind == "uvloop":
        return uvloop.run(coro_fn())
    return asyncio.run(coro_fn())


async def timed(probe) -> tuple[float, Any]:
    t = time.monotonic()
    result = await probe()
    return time.monotonic() - t, result


LOOPS = ["asyncio", "uvloop"]
KINDS = ["tcp", "http"]


@pytest.mark.parametrize("loop_kind", LOOPS)
@pytest.mark.parametrize("kind", KINDS)
def test_connect_that_never_completes_times_out_at_the_deadline(loop_kind: str,
                                                                kind: str) -> None:
    with full_listener() as port:
        probe = make_prober(check(kind, port), allow_private=True)

        async def main():
            return await asyncio.gather(*(timed(probe) for _ in range(5)))
        outcomes = run_on(loop_kind, main)
    for elapsed, result in outcomes:
        assert (result.ok, result.reason) == (False, "timeout")
        assert TIMEOUT - 0.01 <= elapsed <= TIMEOUT + SLACK, elapsed
        assert result.latency <= TIMEOUT + SLACK


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_many_silent_connections_all_end_at_their_deadlines(loop_kind: str) -> None:
    """300 probes whose connections open and never answer, started together."""

    async def main():
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()
            except ConnectionError:
                pass
            writer.close()
        server = await asyncio.start_server(hold, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        try:
            probe = make_prober(check("http", port), allow_private=True)
            return await asyncio.gather(*(timed(probe) for _ in range(300)))
        finally:
            server.close()
    outcomes = run_on(loop_kind, main)
    assert {(r.ok, r.reason) for _, r in outcomes} == {(False, "timeout")}
    worst = max(elapsed for elapsed, _ in outcomes)
    assert worst <= TIMEOUT + SLACK + 0.5, worst   # 300 at once on a shared machine


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_caller_cancelling_a_stuck_connect_is_not_turned_into_a_result(loop_kind: str) -> None:
    with full_listener() as port:
        probe = make_prober(check("tcp", port), allow_private=True)

        async def main():
            task = asyncio.ensure_future(probe())
            await asyncio.sleep(TIMEOUT / 4)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The prober keeps working after a cancelled call.
            return await timed(probe)
        elapsed, result = run_on(loop_kind, main)
    assert (result.ok, result.reason) == (False, "timeout")
    assert elapsed <= TIMEOUT + SLACK
