"""No retries, with the real probers: a failing endpoint sees one connection per slot.

The schedule runs on a FakeClock that moves only while no probe is running;
the probes themselves are the real http/https probers against a real loopback
endpoint, with their real timeouts. So however slow the machine, no slot is
late, skipped or cut short, and every count below is exact.
"""

from __future__ import annotations

import asyncio

import pytest
from healthplane.checker.metrics import CheckerMetrics
from healthplane.checker.probes import KIND_CODE, Outcome
from healthplane.checker.runner import Checker
from healthplane.proto.codec import UNHEALTHY
from healthplane.proto.config.model import Check

from healthplane.runtime.clock import FakeClock
from tests.checker.helpers import make_fleet, make_registry, until

INTERVAL = 5.0      # virtual seconds between slots
SLOTS = 3
STEP = 0.05         # virtual seconds per clock step

pytestmark = pytest.mark.usefixtures("probe_path")


class CountingEndpoint:
    """A loopback server that fails every probe its own way and logs connections."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.peers: list[int] = []          # client port of each connection, in accept order
        self.port = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[1])
        try:
            if self.mode == "503":
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                await writer.drain()
            elif self.mode == "wrong":        # a Redis-style server that is not ready
                await reader.readline()
                writer.write(b"-LOADING\r\n")
                await writer.drain()
            elif self.mode == "silent":
                await reader.read()           # never answer: the probe times out and hangs up
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def probe_connections(self) -> list[int]:
        """The connections made by probes so far, every one of them logged.

        A marker connection of our own goes through the same first-in,
        first-out accept queue, so once it is logged every connection made
        before it is too: a retry cannot hide by being accepted late.
        """
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        marker = writer.get_extra_info("sockname")[1]
        writer.close()
        await until(lambda: marker in self.peers)
        self.markers.add(marker)
        return [p for p in self.peers if p not in self.markers]

    async def __aenter__(self) -> CountingEndpoint:
        self.markers: set[int] = set()
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def advance_to_slot(clock: FakeClock, checker: Checker, slot: int) -> None:
    """Move virtual time until the slot's probe has started (at most one interval)."""
    for _ in range(int(INTERVAL / STEP) + 2):
        if checker.dispatcher.launched >= slot:
            return
        await clock.advance(STEP)
    raise AssertionError(f"slot {slot} did not start within one interval")


@pytest.mark.parametrize("kind, mode, fields", [
    ("http", "503", {}), ("http", "silent", {}), ("https", "silent", {}),
    ("http", "503", {"method": "HEAD", "headers": (("X-Probe", "1"),),
                     "expected_status": ((200, 204),)}),
    ("tcp", "wrong", {"send": "PING\r\n", "expect": "+PONG"}),
    ("tcp", "silent", {"send": "PING\r\n", "expect": "+PONG"}),
])
async def test_failing_endpoint_sees_exactly_one_connection_per_slot(kind, mode, fields):
    # Real seconds: a silent endpoint makes every probe wait out its timeout;
    # a 503 comes back at once, and the long timeout keeps a loaded machine
    # from turning it into a timeout.
    timeout = 0.5 if mode == "silent" else 4.0
    result = Outcome.TIMEOUT if mode == "silent" else Outcome.FAILED
    clock = FakeClock()
    async with CountingEndpoint(mode) as endpoint:
        check = Check(id="t", type=kind, host="127.0.0.1", port=endpoint.port,
                      interval=INTERVAL, timeout=timeout, failure_threshold=2, **fields)
        fleet = make_fleet({"r": ("a",)}, report_interval=0.25)
        metrics = CheckerMetrics()
        checker = Checker(make_registry([check]), fleet, "a", clock=clock, metrics=metrics)
        task = asyncio.create_task(checker.run())
        try:
            for slot in range(1, SLOTS + 1):
                await advance_to_slot(clock, checker, slot)
                assert checker.dispatcher.launched == slot
                # The probe runs in real time; virtual time waits for it.
                await until(lambda: checker.dispatcher.in_flight == 0)
                # One slot, one connection: a retry would be a second one.
                assert len(await endpoint.probe_connections()) == slot
            await clock.advance(0.5)        # a report folds the last result in
            assert checker.dispatcher.missed == 0
        finally:
            checker.stop()
            await clock.advance(0.1)
            await task
    assert checker.last_states.tolist() == [UNHEALTHY]
    counts = metrics.probe_counts
    assert counts.sum() == counts[KIND_CODE[kind], result] == SLOTS, counts
