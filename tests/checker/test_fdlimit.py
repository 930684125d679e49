"""Probes in flight never run the checker out of file descriptors.

When endpoints time out, every probe holds a socket for its whole timeout.
Under a soft open-files limit below the concurrency limit, connects would
fail with EMFILE and healthy endpoints would be reported failing; the
checker raises its soft limit to fit, or lowers its concurrency limit when
the hard limit is too low.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from healthplane.checker import fdlimit
from healthplane.checker.dispatch import concurrency_limit
from healthplane.checker.probes import make_prober
from healthplane.checker.runner import Checker
from healthplane.proto.config.model import Check

from tests.checker.helpers import make_fleet, make_registry, tcp_checks

pytestmark = pytest.mark.timeout(60)


@contextmanager
def soft_open_files(n: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A listener whose accept queue is full: connects hang until their deadline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.05)
    try:
        yield port
    finally:
        for s in fillers:
            s.close()
        server.close()


async def test_a_checker_whose_probes_all_hang_gets_timeouts_not_emfile() -> None:
    # 400 checks a second, each hanging for its 0.5 s timeout: about 200
    # sockets open at once, up to the concurrency limit (~310), under a soft
    # limit of 150 open files.
    reasons: dict[str, int] = {}

    def recording_prober(check: Check, *, allow_private: bool):
        probe = make_prober(check, allow_private=allow_private)

        async def run():
            result = await probe()
            reasons[result.reason] = reasons.get(result.reason, 0) + 1
            return result
        return run

    with unanswered_port() as port, soft_open_files(150):
        checks = [Check(id=f"h{i}", type="http", host="127.0.0.1", port=port, path="/",
                        interval=1.0, timeout=0.5) for i in range(400)]
        checker = Checker(make_registry(checks), make_fleet({"r": ("a",)}), "a",
                          make_prober=recording_prober)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= checker.dispatcher.limit
        task = asyncio.create_task(checker.run())
        await asyncio.sleep(2.5)
        checker.stop()
        await asyncio.wait_for(task, 10)
    assert sum(reasons.values()) >= 300, reasons
    assert set(reasons) == {"timeout"}, reasons


def test_soft_limit_is_raised_to_cover_the_concurrency_limit() -> None:
    with soft_open_files(128):
        checker = Checker(make_registry(tcp_checks(3000, interval=1.0, timeout=1.0)),
                          make_fleet({"r": ("a",)}), "a")
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    d = checker.dispatcher
    assert d.limit == concurrency_limit(d.intervals, d.timeouts)
    assert soft >= d.limit + checker.canaries.limit + fdlimit.RESERVE


def test_a_hard_limit_too_low_lowers_the_concurrency_limit(monkeypatch) -> None:
    hard = 1000
    state = {"soft": 256}
    monkeypatch.setattr(fdlimit.resource, "getrlimit", lambda _: (state["soft"], hard))

    def setrlimit(_, limits):
        if limits[0] > hard:
            raise ValueError("not allowed to raise maximum limit")
        state["soft"] = limits[0]
    monkeypatch.setattr(fdlimit.resource, "setrlimit", setrlimit)
    assert fdlimit.fit_probe_limit(3000, 10) == hard - 10 - fdlimit.RESERVE
    assert state["soft"] == hard
    assert fdlimit.fit_probe_limit(100, 10) == 100
    checker = Checker(make_registry(tcp_checks(3000, interval=1.0, timeout=1.0)),
                      make_fleet({"r": ("a",)}), "a")
    assert checker.dispatcher.limit == hard - checker.canaries.limit - fdlimit.RESERVE
