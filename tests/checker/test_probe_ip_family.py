"""ip_family: which addresses of a host name are probed, against an IPv6-only
listener on ::1, on both loops.

The test host has no name with both an IPv4 and an IPv6 address, so the
shared resolver's lookup is replaced by one that answers "dual.test" with
both (resolver order: IPv4 first, as getaddrinfo usually gives). The
connections are real.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from healthplane.checker.probes import Outcome, make_prober
from healthplane.checker.probes.address import RESOLVER, Resolved, _verdict
from healthplane.proto.config.model import Check

from tests.checker.loops import LOOPS, run_on

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("probe_path")]

NAMES = {"dual.test": ["127.0.0.1", "::1"], "v4only.test": ["127.0.0.1"]}


@pytest.fixture(autouse=True)
def names(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def lookup(loop, host: str, allow_private: bool) -> Resolved:
        return _verdict(NAMES.get(host, []), allow_private)
    monkeypatch.setattr(RESOLVER, "_lookup", lookup)
    RESOLVER._cache.clear()
    yield
    RESOLVER._cache.clear()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port with an IPv6-only listener on ::1 and the same port on 127.0.0.1
    bound but not listening (connects there are refused, and nobody else
    can take it during the test)."""
    for _ in range(50):     # the IPv4 side of a free IPv6 port may be someone else's
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.bind(("::1", 0))
        number = v6.getsockname()[1]
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            v4.bind(("127.0.0.1", number))
            break
        except OSError:
            v4.close()
            v6.close()
    else:
        pytest.fail("no port free on both ::1 and 127.0.0.1")
    v6.listen(16)
    v6.setblocking(False)
    yield v6
    v6.close()
    v4.close()


def probe_on(loop: str, listener: socket.socket, check: Check):
    async def scenario():
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if await reader.read(1):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            writer.close()
        server = await asyncio.start_server(handle, sock=listener)
        try:
            return await make_prober(check, allow_private=True)()
        finally:
            server.close()
    return run_on(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("kind", ["tcp", "http"])
@pytest.mark.parametrize("family,outcome", [
    ("ipv6", Outcome.OK), ("ipv4", Outcome.REFUSED), ("any", Outcome.REFUSED)])
def test_family_picks_the_address(listener, loop: str, kind: str, family: str,
                                  outcome: Outcome) -> None:
    number = listener.getsockname()[1]
    check = Check(id="x", type=kind, host="dual.test", port=number, timeout=1.0,
                  ip_family=family)  # type: ignore[arg-type]
    result = probe_on(loop, listener, check)
    assert result.outcome == outcome, result.reason


@pytest.mark.parametrize("loop", LOOPS)
def test_no_address_of_the_family(listener, loop: str) -> None:
    check = Check(id="x", type="tcp", host="v4only.test", port=1, timeout=1.0,
                  ip_family="ipv6")
    result = probe_on(loop, listener, check)
    assert (result.outcome, result.reason) == (Outcome.RESOLVE_FAILED, "no ipv6 address")


@pytest.mark.parametrize("loop", LOOPS)
def test_ipv6_literal(listener, loop: str) -> None:
    check = Check(id="x", type="http", host="::1", port=listener.getsockname()[1], timeout=1.0,
                  ip_family="ipv6")
    assert probe_on(loop, listener, check).ok


def test_the_policy_applies_to_every_address_whatever_the_family() -> None:
    # A name with one private address is refused even when only the public
    # family is probed: the name must not reach inside the network.
    verdict = _verdict(["192.0.2.1", "fd00::1"], allow_private=False)
    assert verdict.only("ipv4").outcome is Outcome.FORBIDDEN
