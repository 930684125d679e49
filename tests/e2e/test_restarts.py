"""Restarts never answer wrong: aggregators, the DNS front, in every order.

An endpoint is dead (and known dead for longer than the detection bound)
when a process restarts; a poller asks the DNS front every 50 ms across the
restart. An answer that contains the dead endpoint, or that leaves out a
healthy one, is wrong; SERVFAIL and a timeout are not answers at all. After
the restart the right answer must be back within one stale_after of the
restarted process being ready (plus the time it takes to start).
"""

from __future__ import annotations

import glob
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.query
import dns.rcode
import grpc
import pytest
from healthplane.aggregator.snapshot_file import read_snapshot_file
from healthplane.deploy.launcher import Fleet, TargetsOptions, free_ports, leftover_pids
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from .conftest import (
    API_SECONDARY,
    DETECTION_BOUND,
    PROBED_IDS,
    WWW,
    all_status,
    answers,
    wait_for,
    write_configs,
)

pytestmark = pytest.mark.e2e

DEAD = "web-2"
RIGHT_WWW = set(WWW.values()) - {WWW[DEAD]}
STALE_AFTER = 1.5


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("restarts")
    control = free_ports(1)[0]
    checks, fleet_yaml, zone = write_configs(directory, control)
    f = Fleet(checks, fleet_yaml, zone, run_dir=directory / "run",
              targets=TargetsOptions(control=f"127.0.0.1:{control}"), ready_timeout=60)
    with f:
        for i in range(len(f.aggregators)):
            wait_for(lambda i=i: all_status(f, i) == dict.fromkeys(PROBED_IDS, "healthy"), 30,
                     what=f"every check healthy on aggregator {i}")
        f.target_down(DEAD)
        f.target_down("api-primary")
        wait_for(lambda: answers(f, "www.example.test") == RIGHT_WWW
                 and answers(f, "api.example.test") == {API_SECONDARY},
                 3 * DETECTION_BOUND, what=f"{DEAD} and api-primary out of DNS")
        # Known dead for longer than the detection bound before any restart.
        time.sleep(DETECTION_BOUND)
        yield f
    assert leftover_pids(f.run_dir) == [], "the fleet left processes behind"


@dataclass
class Poller:
    """Asks the DNS front for www and api every 50 ms in a thread."""

    fleet: Fleet
    wrong: list[tuple[float, str, object]] = field(default_factory=list)
    right_since: float | None = None
    polls: int = 0
    silent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _ask(self, name: str) -> set[str] | None:
        assert self.fleet.dns_address is not None
        host, port = self.fleet.dns_address
        try:
            reply = dns.query.udp(dns.message.make_query(name, "A"), host, port=port,
                                  timeout=0.3)
        except (dns.exception.DNSException, OSError):
            return None
        if reply.rcode() != dns.rcode.NOERROR:
            return None
        return {rd.address for rrset in reply.answer for rd in rrset}

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            t = time.monotonic() - start
            www, api = self._ask("www.example.test."), self._ask("api.example.test.")
            self.polls += 1
            if www is None or api is None:
                self.silent += 1
                self.right_since = None
            elif www != RIGHT_WWW or api != {API_SECONDARY}:
                self.wrong.append((t, "www", www) if www != RIGHT_WWW else (t, "api", api))
                self.right_since = None
            elif self.right_since is None:
                self.right_since = time.monotonic()
            time.sleep(0.05)

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(5)

    def answering_right(self) -> bool:
        return self.right_since is not None and time.monotonic() - self.right_since > 0.2


def _restart_aggregator(f: Fleet, index: int, sig: int = signal.SIGKILL) -> float:
    f.kill_aggregator(index, sig)
    f.start_aggregator(index)
    return time.monotonic()


def _restart_dns(f: Fleet) -> float:
    f.kill_dns(signal.SIGKILL)
    f.start_dns()
    return time.monotonic()


ORDERS: dict[str, Callable[[Fleet], float]] = {
    "followed aggregator": lambda f: _restart_aggregator(f, 0),
    "other aggregator": lambda f: _restart_aggregator(f, 1),
    "both aggregators, one after the other": lambda f: (
        _restart_aggregator(f, 0), _restart_aggregator(f, 1))[-1],
    # Down for a few seconds: the checkers' reconnect backoff has grown by
    # then, so the aggregators tick for a while before hearing them.
    "both aggregators, down for 3 s": lambda f: (
        f.kill_aggregator(0), f.kill_aggregator(1), time.sleep(3.0), f.start_aggregator(0),
        f.start_aggregator(1), time.monotonic())[-1],
    "dns front": _restart_dns,
    "dns front, then both aggregators": lambda f: (
        _restart_dns(f), f.kill_aggregator(0), f.kill_aggregator(1),
        f.start_aggregator(0), f.start_aggregator(1), time.monotonic())[-1],
    "both aggregators, then the dns front": lambda f: (
        f.kill_aggregator(0), f.kill_aggregator(1), f.start_aggregator(0),
        f.start_aggregator(1), _restart_dns(f))[-1],
    "everything, down for 3 s": lambda f: (
        f.kill_aggregator(0), f.kill_aggregator(1), f.kill_dns(), time.sleep(3.0),
        f.start_dns(), f.start_aggregator(0), f.start_aggregator(1), time.monotonic())[-1],
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_no_wrong_answer_across_a_restart(fleet: Fleet, order: str) -> None:
    wait_for(lambda: answers(fleet, "www.example.test") == RIGHT_WWW, 10,
             what="the right answer before the restart")
    with Poller(fleet) as poller:
        time.sleep(0.3)
        ORDERS[order](fleet)
        took = wait_for(poller.answering_right, 20, what="the right answer after the restart")
        time.sleep(1.0)
    print(f"\n{order}: {poller.polls} polls, {poller.silent} without an answer, "
          f"right answers {took:.2f} s after the restarted processes were up")
    assert poller.wrong == [], f"{len(poller.wrong)} wrong answers: {poller.wrong[:5]}"
    # Held back no longer than one stale_after past readiness, plus start-up slack.
    assert took <= STALE_AFTER + 3.0


def _get_sequence(fleet: Fleet, address: str) -> tuple[int, bool]:
    with fleet.channel(address) as channel:
        got = pb_grpc.HealthStub(channel).Get(pb.GetRequest(), timeout=2)
    return got.sequence, got.warming


def test_sequence_only_grows_across_restarts_and_no_temp_file_stays(fleet: Fleet) -> None:
    address = fleet.aggregator_addresses[1]
    path = str(fleet.run_dir / "aggregator-1.msgpack")
    wait_for(lambda: os.path.exists(path), 10, what="the snapshot file written")
    seen_api: list[int] = []
    seen_file: list[int] = []
    for n in range(8):
        wait_for(lambda: _ready(fleet, address) and not _get_sequence(fleet, address)[1], 10,
                 what="aggregator 1 warm")
        time.sleep(0.3)   # a tick past the warm-up is on disk
        seen_api.append(_get_sequence(fleet, address)[0])
        seen_file.append(int(read_snapshot_file(path)["sequence"]))
        if n == 3:
            # A crash between mkstemp and rename leaves a temporary file; the
            # next start removes it.
            with open(os.path.join(os.path.dirname(path), ".aggregator-1.msgpack.crash.tmp"),
                      "wb") as f:
                f.write(b"partial")
        _restart_aggregator(fleet, 1, signal.SIGKILL if n % 2 else signal.SIGTERM)
        if _ready(fleet, address):
            seen_api.append(_get_sequence(fleet, address)[0])   # the first, warming tick
    api = seen_api
    print(f"\nHealth API sequences {api}\nfile sequences {seen_file}")
    assert api == sorted(api) and len(set(api)) == len(api), api
    assert seen_file == sorted(seen_file) and len(set(seen_file)) == len(seen_file), seen_file
    assert glob.glob(str(fleet.run_dir / ".*.tmp")) == []


def _ready(fleet: Fleet, address: str) -> bool:
    try:
        _get_sequence(fleet, address)
        return True
    except grpc.RpcError:
        return False
