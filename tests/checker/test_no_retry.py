"""No retries, with the real probers: a failing endpoint sees one connection per slot."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from checker.clock import MonotonicClock
from checker.metrics import CheckerMetrics
from checker.runner import Checker
from proto.codec import UNHEALTHY
from proto.config.model import Check
from tests.checker.helpers import make_fleet, make_registry

INTERVAL = 0.5


class CountingEndpoint:
    """A loopback server that fails every probe its own way and logs connections."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections: list[float] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(time.monotonic())
        try:
            if self.mode == "503":
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                await writer.drain()
            elif self.mode == "silent":
                await asyncio.sleep(5)        # accept, never answer: the probe times out
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("kind, mode", [("http", "503"), ("http", "silent"), ("https", "silent")])
async def test_failing_endpoint_sees_exactly_one_connection_per_interval(kind, mode):
    endpoint = CountingEndpoint(mode)
    async with endpoint as port:
        check = Check(id="t", type=kind, host="127.0.0.1", port=port, interval=INTERVAL,
                      timeout=0.3, failure_threshold=2)
        fleet = make_fleet({"r": ("a",)}, report_interval=0.25)
        metrics = CheckerMetrics()
        checker = Checker(make_registry([check]), fleet, "a", clock=MonotonicClock(),
                          metrics=metrics)
        task = asyncio.create_task(checker.run())
        await asyncio.sleep(2.2)
        checker.stop()
        await task
    conns = np.array(endpoint.connections)
    # 2.2 s at one slot per 0.5 s: 4 or 5 slots (one fewer if a slow machine
    # made the checker skip one), each exactly one connection. A retry would
    # show as a second connection right after the first.
    assert 3 <= conns.size <= 5, conns
    gaps = np.diff(conns)
    assert np.all(gaps > INTERVAL / 2), gaps
    assert checker.last_states.tolist() == [UNHEALTHY]
    if kind == "http":
        result = "timeout" if mode == "silent" else "failed"
        assert metrics.probe_counts.sum() == metrics.probe_counts[0][
            {"failed": 1, "timeout": 2}[result]], metrics.probe_counts
