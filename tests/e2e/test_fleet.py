"""End to end: real processes, real gRPC, real DNS clients (dnspython and dig).

The tests share one fleet (see conftest.py) and each puts back what it
changed, so they also pass one at a time.
"""

from __future__ import annotations

import re
import signal
import socket
import struct
import threading
import time

import dns.message
import dns.query
import dns.rcode
import pytest
from healthplane.deploy.launcher import Fleet

from .conftest import (
    API_PRIMARY,
    API_SECONDARY,
    CHECKERS,
    DETECTION_BOUND,
    DIG,
    NO_DIG,
    PROBED_IDS,
    WWW,
    all_status,
    answers,
    dig,
    wait_for,
)

pytestmark = pytest.mark.e2e

ALL_WWW = set(WWW.values())
RECOVERY_TIMEOUT = 3 * DETECTION_BOUND   # recovery is asserted, not timed


def _restore_all_healthy(fleet: Fleet) -> None:
    fleet.target_up("*")
    # Every aggregator, not just the first: they tick independently, so one may
    # still be a tick behind the other when the next test starts.
    for i in range(len(fleet.aggregators)):
        wait_for(lambda i=i: all_status(fleet, i) == dict.fromkeys(PROBED_IDS, "healthy"),
                 RECOVERY_TIMEOUT, what=f"every check healthy again on aggregator {i}")
    wait_for(lambda: answers(fleet, "www.example.test") == ALL_WWW, RECOVERY_TIMEOUT,
             what="www answering every value again")


def test_healthy_fleet_answers_every_value(fleet: Fleet) -> None:
    assert answers(fleet, "www.example.test") == ALL_WWW
    assert answers(fleet, "www.example.test", tcp=True) == ALL_WWW
    assert answers(fleet, "api.example.test") == {API_PRIMARY}


def test_dig_sees_the_same_answers(fleet: Fleet) -> None:
    if DIG is None:
        pytest.skip(NO_DIG)
    assert dig(fleet, "www.example.test") == ALL_WWW
    assert dig(fleet, "www.example.test", tcp=True) == ALL_WWW
    assert dig(fleet, "api.example.test") == {API_PRIMARY}


def test_dead_endpoint_leaves_the_answers_within_the_bound(fleet: Fleet) -> None:
    """(a) interval x failure_threshold + report_interval + tick + 1 s, then comes back."""
    try:
        fleet.target_down("web-2")
        fleet.target_down("api-primary")
        died = time.monotonic()
        www_gone = api_moved = None
        while time.monotonic() - died < 2 * DETECTION_BOUND:
            now = time.monotonic() - died
            if www_gone is None and WWW["web-2"] not in answers(fleet, "www.example.test"):
                www_gone = now
            if api_moved is None and answers(fleet, "api.example.test") == {API_SECONDARY}:
                api_moved = now
            if www_gone is not None and api_moved is not None:
                break
            time.sleep(0.05)
        print(f"\ndetection: www multivalue {www_gone} s, api failover {api_moved} s "
              f"(bound {DETECTION_BOUND} s)")
        assert www_gone is not None and www_gone <= DETECTION_BOUND
        assert api_moved is not None and api_moved <= DETECTION_BOUND
        assert answers(fleet, "www.example.test") == ALL_WWW - {WWW["web-2"]}
        if DIG is not None:
            assert dig(fleet, "www.example.test") == ALL_WWW - {WWW["web-2"]}
            assert dig(fleet, "api.example.test") == {API_SECONDARY}

        fleet.target_up("web-2")
        fleet.target_up("api-primary")
        back = wait_for(lambda: answers(fleet, "www.example.test") == ALL_WWW
                        and answers(fleet, "api.example.test") == {API_PRIMARY},
                        RECOVERY_TIMEOUT, what="recovered endpoints back in DNS")
        print(f"recovery: {back:.2f} s")
    finally:
        _restore_all_healthy(fleet)


def test_sigkill_of_one_checker_flips_nothing_and_the_rest_keep_deciding(
        fleet: Fleet) -> None:
    """(b) one checker's death is one vote fewer, never a state change."""
    victim = CHECKERS["us-east"]
    before = all_status(fleet)
    assert before == dict.fromkeys(PROBED_IDS, "healthy")
    try:
        fleet.kill_checker(victim, signal.SIGKILL)
        # Past stale_after (1.5 s) plus several ticks: its votes are gone by then.
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            assert all_status(fleet, 0) == before
            assert all_status(fleet, 1) == before
            assert answers(fleet, "www.example.test") == ALL_WWW
            time.sleep(0.2)
        # The remaining checkers still decide: a death is still seen in time.
        fleet.target_down("web-3")
        took = wait_for(lambda: WWW["web-3"] not in answers(fleet, "www.example.test"),
                        2 * DETECTION_BOUND, what="web-3 out of www")
        print(f"\ndetection with {victim} dead: {took:.2f} s (bound {DETECTION_BOUND} s)")
        assert took <= DETECTION_BOUND
        assert all_status(fleet)["web-3"] == "unhealthy"
    finally:
        fleet.start_checker(victim)
        _restore_all_healthy(fleet)


def test_every_endpoint_dead_fails_open(fleet: Fleet) -> None:
    """(d) all unhealthy: DNS answers all values rather than nothing.

    Everything but web-1 dies first, so www answers web-1 alone; when web-1
    dies too, the answer can only become every value again by failing open
    on the new snapshot, not by serving a stale one.
    """
    try:
        for check_id in PROBED_IDS:
            if check_id != "web-1":
                fleet.target_down(check_id)
        wait_for(lambda: answers(fleet, "www.example.test") == {WWW["web-1"]},
                 2 * DETECTION_BOUND, what="www down to web-1 alone")
        fleet.target_down("web-1")
        wait_for(lambda: all_status(fleet) == dict.fromkeys(PROBED_IDS, "unhealthy"),
                 2 * DETECTION_BOUND, what="every check unhealthy")
        wait_for(lambda: answers(fleet, "www.example.test") == ALL_WWW,
                 2 * DETECTION_BOUND, what="www failing open to every value")
        assert answers(fleet, "api.example.test") == {API_PRIMARY}
        if DIG is not None:
            assert dig(fleet, "www.example.test") == ALL_WWW
            assert dig(fleet, "api.example.test") == {API_PRIMARY}
    finally:
        _restore_all_healthy(fleet)


def _udp_exchange(fleet: Fleet, payload: bytes, timeout: float = 1.0) -> bytes | None:
    assert fleet.dns_address is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, fleet.dns_address)
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def _assert_formerr_or_dropped(reply: bytes | None, query_id: int | None) -> None:
    if reply is None:
        return   # dropped: allowed
    assert len(reply) >= 12, "a reply shorter than a DNS header"
    rid, flags = struct.unpack("!HH", reply[:4])
    assert flags & 0x8000, "the reply is not a response"
    assert flags & 0x000F == dns.rcode.FORMERR, f"rcode {flags & 0xF}, not FORMERR"
    if query_id is not None:
        assert rid == query_id


def test_malformed_and_oversized_queries_get_formerr_or_are_dropped(fleet: Fleet) -> None:
    """(e) bad queries cost a FORMERR or nothing, and serving goes on."""
    good = dns.message.make_query("www.example.test", "A")
    wire = good.to_wire()
    qid = good.id
    cases: list[tuple[bytes, int | None]] = [
        (b"", None),
        (b"\x12", None),                                    # shorter than a header
        (wire[:12], qid),                                   # header claims a question
        (wire[:-3], qid),                                   # question cut short
        (wire + b"\x00" * 7, qid),                          # trailing garbage
        (bytes(range(256)) * 2, None),                      # noise
        (wire[:2] + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" + b"a" * 63
         + b"\xc0\x0c" + b"\x00\x01\x00\x01", None),         # compression loop in qname
        (wire[:12] + b"\x01a" * 4000, None),                # oversized (8 KB) query
    ]
    for payload, expect_id in cases:
        _assert_formerr_or_dropped(_udp_exchange(fleet, payload, 0.5), expect_id)
    # The same garbage over TCP, with a length prefix that lies and one that is huge.
    assert fleet.dns_address is not None
    for payload in (struct.pack("!H", 40) + b"\x00" * 10, struct.pack("!H", 65535) + wire,
                    struct.pack("!H", 12) + wire[:12]):
        with socket.create_connection(fleet.dns_address, timeout=2) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            try:
                data = s.recv(65535)
            except (TimeoutError, ConnectionResetError):
                data = b""
            if len(data) >= 2:
                _assert_formerr_or_dropped(data[2:], None)
    # A burst of noise in parallel with real queries: every real query is answered.
    stop = threading.Event()

    def noise() -> None:
        assert fleet.dns_address is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(2000):
                if stop.is_set():
                    break
                s.sendto(bytes([i % 256]) * (1 + i % 600), fleet.dns_address)

    thread = threading.Thread(target=noise)
    thread.start()
    try:
        for _ in range(20):
            assert answers(fleet, "www.example.test") == ALL_WWW
    finally:
        stop.set()
        thread.join()
    reply = dns.query.udp(good, fleet.dns_address[0], port=fleet.dns_address[1], timeout=2)
    assert reply.rcode() == dns.rcode.NOERROR
    if DIG is not None:
        assert dig(fleet, "www.example.test") == ALL_WWW


def _followed(fleet: Fleet) -> str | None:
    """The aggregator the DNS front last said it follows (from its log)."""
    assert fleet.dns is not None
    found = re.findall(r"following aggregator (\S+)", fleet.dns.log.read_text())
    return found[-1] if found else None


def test_dns_front_survives_the_death_of_its_aggregator(fleet: Fleet) -> None:
    """(c) answers keep coming and keep following health after the switch."""
    served = failed = 0
    first, second = fleet.aggregator_addresses
    wait_for(lambda: _followed(fleet) == first, 5, what=f"the DNS front following {first}")
    try:
        fleet.kill_aggregator(0)
        switch_end = time.monotonic() + 3.0
        while time.monotonic() < switch_end:
            got = answers(fleet, "www.example.test")
            served += 1
            failed += got != ALL_WWW
            time.sleep(0.05)
        assert failed == 0, f"{failed} of {served} answers wrong during the switch"
        wait_for(lambda: _followed(fleet) == second, 5,
                 what=f"the DNS front following {second}")
        fleet.target_down("web-4")
        took = wait_for(lambda: WWW["web-4"] not in answers(fleet, "www.example.test"),
                        2 * DETECTION_BOUND, what="web-4 out of www via the other aggregator")
        print(f"\ndetection via the second aggregator: {took:.2f} s")
        assert all_status(fleet, 1)["web-4"] == "unhealthy"
        fleet.target_up("web-4")
        wait_for(lambda: answers(fleet, "www.example.test") == ALL_WWW, RECOVERY_TIMEOUT,
                 what="web-4 back via the other aggregator")
    finally:
        if not fleet.aggregators[0].alive():
            fleet.start_aggregator(0)
        _restore_all_healthy(fleet)
