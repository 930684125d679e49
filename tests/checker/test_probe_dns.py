"""dns probes against a real dnspython server on loopback UDP, on both loops."""

from __future__ import annotations

import socket

import pytest
from healthplane.checker.probes import Outcome, dns, make_prober
from healthplane.proto.config.model import Check

from tests.checker.dnsserver import DnsServer
from tests.checker.loops import LOOPS, run_on

pytestmark = pytest.mark.timeout(30)


def dns_check(port: int, name: str, **kw) -> Check:
    fields = dict(id="ns", type="dns", host="127.0.0.1", port=port, timeout=1.0,
                  interval=10.0, query_name=name)
    fields.update(kw)
    return Check(**fields)


@pytest.fixture(scope="module")
def server():
    with DnsServer() as s:
        yield s


def probe_on(loop: str, check: Check):
    async def scenario():
        return await make_prober(check, allow_private=True)()
    return run_on(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name,expect,outcome,reason", [
    ("ok.example.test.", "NOERROR", Outcome.OK, "ok"),
    ("missing.example.test.", "NOERROR", Outcome.FAILED, "rcode NXDOMAIN"),
    ("broken.example.test.", "NOERROR", Outcome.FAILED, "rcode SERVFAIL"),
    ("missing.example.test.", "NXDOMAIN", Outcome.OK, "ok"),
    ("ok.example.test.", "NXDOMAIN", Outcome.FAILED, "rcode NOERROR"),
])
def test_rcode_decides(server: DnsServer, loop: str, name: str, expect: str,
                       outcome: Outcome, reason: str) -> None:
    before = server.queries
    result = probe_on(loop, dns_check(server.port, name, expect_rcode=expect))
    assert (result.outcome, result.reason) == (outcome, reason)
    assert server.queries == before + 1      # one query, no retry


@pytest.mark.parametrize("loop", LOOPS)
def test_silence_is_one_query_and_a_timeout(server: DnsServer, loop: str) -> None:
    before = server.queries
    result = probe_on(loop, dns_check(server.port, "silent.example.test.", timeout=0.4))
    assert (result.outcome, result.reason) == (Outcome.TIMEOUT, "timeout")
    assert 0.35 <= result.latency < 1.5
    assert server.queries == before + 1


@pytest.mark.parametrize("loop", LOOPS)
def test_forged_answers_are_dropped_and_counted(server: DnsServer, loop: str) -> None:
    dropped = dns.DROPPED[0]
    result = probe_on(loop, dns_check(server.port, "forged.example.test."))
    assert (result.outcome, result.reason) == (Outcome.OK, "ok")
    assert dns.DROPPED[0] == dropped + 2     # the wrong id and the wrong question


@pytest.mark.parametrize("loop", LOOPS)
def test_a_flood_of_forgeries_costs_a_bounded_parse_and_ends_in_a_timeout(
        server: DnsServer, loop: str) -> None:
    dropped = dns.DROPPED[0]
    result = probe_on(loop, dns_check(server.port, "flood.example.test.", timeout=0.5))
    # The real answer comes after the flood: the probe stopped listening by then.
    assert (result.outcome, result.reason) == (Outcome.TIMEOUT, "timeout")
    assert dns.DROPPED[0] - dropped == dns.MAX_DROPS


@pytest.mark.parametrize("loop", LOOPS)
def test_nothing_listening_is_refused(loop: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = probe_on(loop, dns_check(port, "ok.example.test."))
    # ICMP port unreachable arrives at once on loopback (refused); some kernels
    # rate-limit ICMP, and then only the deadline remains.
    assert result.outcome in (Outcome.REFUSED, Outcome.TIMEOUT)


@pytest.mark.parametrize("loop", LOOPS)
def test_ipv6_server(loop: str) -> None:
    with DnsServer("::1") as s6:
        result = probe_on(loop, dns_check(s6.port, "ok.example.test.", host="::1",
                                          ip_family="ipv6", query_type="AAAA"))
    assert result.ok


def test_private_server_refused_unless_allowed(server: DnsServer) -> None:
    async def scenario():
        return await make_prober(dns_check(server.port, "ok.example.test."),
                                 allow_private=False)()
    result = run_on("asyncio", scenario)
    assert (result.outcome, result.reason) == (Outcome.FORBIDDEN, "forbidden address (loopback)")
