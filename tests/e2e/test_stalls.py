"""Stalls, rise and fall, and Query while checks flap: real processes.

A checker stopped with SIGSTOP while its endpoint dies must not vote with
its pre-stall "healthy" verdict after SIGCONT: its verdicts go back to
unknown and rebuild from new probes. And a check with ``success_threshold:
3`` (rise) beside ``failure_threshold: 1`` (fall) needs three successes in a
row at every checker before it votes healthy again. And a Query's vote
counts always agree with its own per-checker rows, while checks flap.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from healthplane.deploy.launcher import Fleet, TargetsOptions, free_ports, leftover_pids
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from .conftest import DETECTION_BOUND, INTERVAL, PROBED_IDS, wait_for, write_configs

pytestmark = pytest.mark.e2e

RISE = 3


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("stalls")
    control = free_ports(1)[0]
    checks, fleet_yaml, zone = write_configs(directory, control)
    taken = {control} | {int(p) for p in re.findall(r":\s*(\d+)\b", checks.read_text()
                                                   + fleet_yaml.read_text())}
    slow, fast, thin, quorate, stall = free_ports(5, exclude=taken)
    with checks.open("a") as f:
        for cid, port, rise in (("rise-3", slow, RISE), ("rise-1", fast, 1)):
            f.write(f"  - {{id: {cid}, type: http, host: 127.0.0.1, port: {port}, "
                    f"path: /health, interval: {INTERVAL}, timeout: 0.5, failure_threshold: 1, "
                    f"success_threshold: {rise}}}\n")
        # Six failures to fall: more than a resumed checker sees before its
        # self-doubt (the missed slots of the stall) is over.
        f.write(f"  - {{id: stall-1, type: http, host: 127.0.0.1, port: {stall}, "
                f"path: /health, interval: {INTERVAL}, timeout: 0.5, failure_threshold: 6}}\n")
        # Probed in one region by one checker: with a quorum of two votes
        # that one vote is no data, and unknown_as (last_known) decides.
        for cid, port, extra in (("thin-1", thin, ", min_votes: 2"), ("thin-0", quorate, "")):
            f.write(f"  - {{id: {cid}, type: tcp, host: 127.0.0.1, port: {port}, "
                    f"interval: {INTERVAL}, timeout: 0.5, failure_threshold: 1, "
                    f"regions: [us-east]{extra}}}\n")
    f = Fleet(checks, fleet_yaml, zone, run_dir=directory / "run",
              targets=TargetsOptions(control=f"127.0.0.1:{control}"), ready_timeout=60)
    with f:
        wait_for(lambda: _statuses(f) == dict.fromkeys(
                     [*PROBED_IDS, "rise-3", "rise-1", "thin-1", "thin-0", "stall-1"],
                     "healthy"),
                 30, what="every check healthy")
        yield f
    assert leftover_pids(f.run_dir) == [], "the fleet left processes behind"


def _query(f: Fleet, *ids: str) -> pb.QueryResponse:
    with f.channel(f.aggregator_addresses[0]) as channel:
        return pb_grpc.HealthStub(channel).Query(pb.QueryRequest(check_ids=list(ids)), timeout=1)


def _statuses(f: Fleet) -> dict[str, str]:
    names = {pb.STATUS_HEALTHY: "healthy", pb.STATUS_UNHEALTHY: "unhealthy"}
    return {c.check_id: names.get(c.status, "unknown") for c in _query(f).checks}


def test_a_resumed_checker_never_revotes_its_old_verdict(fleet: Fleet) -> None:
    victim = "use1-a"
    pid = fleet.checkers[victim].pid
    assert pid is not None
    try:
        os.kill(pid, signal.SIGSTOP)
        fleet.target_down("stall-1")
        wait_for(lambda: _statuses(fleet)["stall-1"] == "unhealthy", 3 * DETECTION_BOUND,
                 what="stall-1 unhealthy while use1-a is stopped")
        # Well past the stale rule (2 intervals + timeout + grace) of the checker.
        time.sleep(4 * INTERVAL)
        os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        bad: list[tuple[float, str]] = []
        votes_seen = set()
        # Its pre-stall verdict was healthy and it takes six failures to
        # fall: one stale "healthy" of three votes (> 18 %) would revive it.
        while time.monotonic() - resumed < 8.0:
            (check,) = _query(fleet, "stall-1").checks
            vote = next(v for v in check.checkers if v.checker_id == victim)
            if 0 <= vote.snapshot_age_ms < 1500:
                votes_seen.add(vote.vote)
                if vote.vote == pb.STATUS_HEALTHY:
                    bad.append((time.monotonic() - resumed, "use1-a votes healthy"))
            if check.status != pb.STATUS_UNHEALTHY:
                bad.append((time.monotonic() - resumed, f"stall-1 status {check.status}"))
            time.sleep(0.05)
        print(f"\nuse1-a's fresh votes on stall-1 after SIGCONT: {sorted(votes_seen)}")
        assert bad == [], bad[:5]
        # It did resume and rebuild: its fresh vote is unhealthy by now.
        assert pb.STATUS_UNHEALTHY in votes_seen
    finally:
        os.kill(pid, signal.SIGCONT)
        fleet.target_up("stall-1")
        wait_for(lambda: _statuses(fleet)["stall-1"] == "healthy", 3 * DETECTION_BOUND,
                 what="stall-1 healthy again")


def test_success_threshold_rises_slower_than_it_falls(fleet: Fleet) -> None:
    for cid in ("rise-3", "rise-1"):
        fleet.target_down(cid)
    wait_for(lambda: _statuses(fleet)["rise-3"] == _statuses(fleet)["rise-1"] == "unhealthy",
             2 * DETECTION_BOUND, what="both rise checks unhealthy")
    for cid in ("rise-3", "rise-1"):
        fleet.target_up(cid)
    fast = wait_for(lambda: _statuses(fleet)["rise-1"] == "healthy", 3 * DETECTION_BOUND,
                    what="rise-1 healthy")
    slow = wait_for(lambda: _statuses(fleet)["rise-3"] == "healthy", 3 * DETECTION_BOUND,
                    what="rise-3 healthy") + fast
    print(f"\nback to healthy: success_threshold 1 after {fast:.2f} s, "
          f"{RISE} after {slow:.2f} s")
    # Three successes in a row take at least two whole intervals after the first.
    assert slow >= (RISE - 1) * INTERVAL
    assert fast < slow


def test_query_counts_agree_with_its_checker_rows_while_checks_flap(fleet: Fleet) -> None:
    stop = threading.Event()

    def flap() -> None:
        n = 0
        while not stop.is_set():
            for cid in ("web-3", "web-4"):
                (fleet.target_down if n % 2 else fleet.target_up)(cid)
            n += 1
            stop.wait(1.3)

    thread = threading.Thread(target=flap)
    thread.start()
    polls = disagree = 0
    try:
        end = time.monotonic() + 8.0
        while time.monotonic() < end:
            for ch in _query(fleet, "web-3", "web-4").checks:
                polls += 1
                # A row counted at the tick iff its age then was <= stale_after
                # (1.5 s); ages are rounded to ms, so one ms either side is moot.
                sure = [v for v in ch.checkers if 0 <= v.snapshot_age_ms < 1499]
                maybe = [v for v in ch.checkers if 0 <= v.snapshot_age_ms <= 1501]
                for got, kinds in ((ch.healthy_votes, {pb.STATUS_HEALTHY}),
                                   (ch.reporting_votes, {pb.STATUS_HEALTHY,
                                                         pb.STATUS_UNHEALTHY})):
                    lo = sum(v.vote in kinds for v in sure)
                    hi = sum(v.vote in kinds for v in maybe)
                    disagree += not lo <= got <= hi
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join()
        for cid in ("web-3", "web-4"):
            fleet.target_up(cid)
    print(f"\n{polls} check answers while flapping, {disagree} disagreeing")
    assert disagree == 0


def test_one_vote_below_the_quorum_decides_nothing(fleet: Fleet) -> None:
    try:
        fleet.target_down("thin-1")
        fleet.target_down("thin-0")
        # thin-0 has the default quorum: its single unhealthy vote fails it.
        wait_for(lambda: _statuses(fleet)["thin-0"] == "unhealthy", 2 * DETECTION_BOUND,
                 what="thin-0 unhealthy on one vote")
        end = time.monotonic() + 2 * DETECTION_BOUND
        while time.monotonic() < end:
            (thin,) = _query(fleet, "thin-1").checks
            assert thin.status == pb.STATUS_HEALTHY     # last known: never decided otherwise
            assert thin.reporting_votes <= 1
            time.sleep(0.1)
        (thin,) = _query(fleet, "thin-1").checks
        assert (thin.healthy_votes, thin.reporting_votes) == (0, 1)
    finally:
        fleet.target_up("thin-1")
        fleet.target_up("thin-0")


def test_query_says_why_and_the_aggregator_logs_the_change(fleet: Fleet) -> None:
    import subprocess
    import sys
    try:
        fleet.target_down("web-2")
        wait_for(lambda: _statuses(fleet)["web-2"] == "unhealthy", 2 * DETECTION_BOUND,
                 what="web-2 unhealthy")

        def why() -> bool:
            (web2,) = _query(fleet, "web-2").checks
            return all(v.reason not in ("", "ok") and v.detail_age_ms >= 0
                       for v in web2.checkers)
        # Every checker's detail of web-2 comes round within a few reports.
        wait_for(why, 10, what="every checker's reason for web-2")
        out = subprocess.run(
            [sys.executable, "-m", "healthplane", "query", "--aggregator",
             fleet.aggregator_addresses[0], "--checkers", "web-2", *fleet.tls_flags("query")],
            capture_output=True, text=True, timeout=30)
        print("\n" + out.stdout)
        (web2,) = _query(fleet, "web-2").checks
        reasons = {v.reason for v in web2.checkers}
        rows = [ln.split() for ln in out.stdout.splitlines() if ln.startswith("    ")]
        # checker, region, vote, snapshot age, reason, latency, detail age: one word each
        assert len(rows) == 3 and all(len(r) == 7 and r[2] == "unhealthy"
                                      and r[5].endswith("ms") for r in rows)
        assert all(r[4] in {x.replace(" ", "_") for x in reasons} for r in rows)
        log = (fleet.run_dir / "aggregator-0.log").read_text()
        changes = [ln for ln in log.splitlines() if 'msg="status change"' in ln
                   and "check=web-2 old=healthy new=unhealthy" in ln]
        assert changes, "no transition line for web-2"
        assert "votes=0/" in changes[-1] and "reasons=" in changes[-1]
    finally:
        fleet.target_up("web-2")
