"""Rollouts of checks.yaml in either order lose no vote and misread none.

A new checks.yaml that moves every check (a new one is inserted first) is
given to the checkers first and to the aggregators seconds later, then the
other way round with another change. Throughout, both aggregators are asked
every 50 ms: every unchanged check keeps all three reporting votes and its
status, whoever has the new file.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from healthplane.deploy.launcher import Fleet, TargetsOptions, free_ports, leftover_pids
from healthplane.proto.config.loader import load_checks
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

from .conftest import CHECKERS, PROBED_IDS, wait_for, write_configs

pytestmark = pytest.mark.e2e

GAP = 5.0   # seconds between the two halves of the fleet seeing the new file


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("rollouts")
    control = free_ports(1)[0]
    checks, fleet_yaml, zone = write_configs(directory, control)
    f = Fleet(checks, fleet_yaml, zone, run_dir=directory / "run",
              targets=TargetsOptions(control=f"127.0.0.1:{control}"), ready_timeout=60)
    with f:
        # Every vote in: "healthy" alone may still be "never seen".
        wait_for(lambda: all(_full(f, a) for a in f.aggregator_addresses), 30,
                 what="every check healthy with every vote on both aggregators")
        yield f
    assert leftover_pids(f.run_dir) == [], "the fleet left processes behind"


def _full(f: Fleet, address: str) -> bool:
    with f.channel(address) as channel:
        resp = pb_grpc.HealthStub(channel).Query(pb.QueryRequest(check_ids=PROBED_IDS),
                                                 timeout=1)
    return all(c.status == pb.STATUS_HEALTHY and c.reporting_votes == len(CHECKERS)
               for c in resp.checks)


def _checker_reloads(f: Fleet) -> list[str]:
    """The checkers that adopted a new configuration (from their metrics)."""
    done = []
    for cid, port in f.checker_metrics_ports.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        if re.search(r'^healthplane_checker_config_reloads_total\{result="adopted"\} [1-9]',
                     text, re.M):
            done.append(f"checker-{cid}")
    return done


def _hup(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGHUP)


def _watch(f: Fleet, seconds: float, bad: list[str]) -> int:
    """Poll both aggregators; record every dip of an unchanged check's votes."""
    polls = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, address in enumerate(f.aggregator_addresses):
            with f.channel(address) as channel:
                resp = pb_grpc.HealthStub(channel).Query(
                    pb.QueryRequest(check_ids=PROBED_IDS), timeout=1)
            polls += 1
            for ch in resp.checks:
                if ch.reporting_votes != len(CHECKERS) or ch.status != pb.STATUS_HEALTHY:
                    bad.append(f"aggregator {i} on {resp.registry_version}: {ch.check_id} "
                               f"{ch.healthy_votes}/{ch.reporting_votes} status {ch.status}")
        time.sleep(0.05)
    return polls


def _rewrite(path: Path, new_id: str, port: int, first: bool) -> str:
    """checks.yaml with new_id added (first: before every other check); its version."""
    lines = [ln for ln in path.read_text().splitlines() if "id: new-" not in ln]
    entry = (f"  - {{id: {new_id}, type: tcp, host: 127.0.0.1, port: {port}, interval: 1.0, "
             "timeout: 0.5, failure_threshold: 2}")
    lines = [lines[0], entry, *lines[1:]] if first else [*lines, entry]
    path.write_text("\n".join(lines) + "\n")
    return load_checks(str(path), allow_private_targets=True).version


def _versions_in_logs(f: Fleet, names: list[str], version: str) -> list[str]:
    return [n for n in names if re.search(rf"\b{version}\b",
                                          (f.run_dir / f"{n}.log").read_text())]


@pytest.mark.parametrize("checkers_first", [True, False], ids=["checkers first",
                                                               "aggregators first"])
def test_rollout_keeps_every_vote(fleet: Fleet, checkers_first: bool) -> None:
    taken = {int(p) for p in re.findall(r":\s*(\d+)\b", fleet.checks.read_text()
                                            + fleet.fleet_path.read_text())}
    (port,) = free_ports(1, exclude=taken)
    new_id = "new-a" if checkers_first else "new-b"
    version = _rewrite(fleet.checks, new_id, port, first=checkers_first)
    checkers = [p.pid for p in fleet.checkers.values() if p.pid is not None]
    aggregators = [p.pid for p in fleet.aggregators if p.pid is not None]
    first, second = (checkers, aggregators) if checkers_first else (aggregators, checkers)
    bad: list[str] = []
    polls = _watch(fleet, 1.0, bad)
    _hup(first)
    polls += _watch(fleet, GAP, bad)
    names = ([f"checker-{c}" for c in fleet.checkers] if checkers_first
             else [f"aggregator-{i}" for i in range(len(fleet.aggregators))])
    adopted_first = (_checker_reloads(fleet) if checkers_first
                     else _versions_in_logs(fleet, names, version))
    _hup(second)
    polls += _watch(fleet, GAP, bad)
    # The second half tastes the new file before adopting it (a few real
    # cycles in a child process): on a loaded machine that can outlast the
    # gap. Keep watching, bounded, until every aggregator counts every vote
    # of the new check too.
    deadline = time.monotonic() + 60
    while not _settled(fleet, version, new_id):
        assert time.monotonic() < deadline, "the fleet did not settle on the new file"
        polls += _watch(fleet, 0.5, bad)
    print(f"\n{'checkers' if checkers_first else 'aggregators'} first: {polls} answers, "
          f"{len(bad)} with a dip; first half on {version} after {GAP:g} s: {adopted_first}")
    assert adopted_first == names, "the first half did not adopt the new file in the gap"
    for address in fleet.aggregator_addresses:
        with fleet.channel(address) as channel:
            resp = pb_grpc.HealthStub(channel).Query(pb.QueryRequest(), timeout=1)
        assert resp.registry_version == version
        # The new check has no target: all three checkers see it refused.
        new = next(c for c in resp.checks if c.check_id == new_id)
        assert new.reporting_votes == len(CHECKERS) and new.status == pb.STATUS_UNHEALTHY
    assert bad == [], bad[:5]


def _settled(f: Fleet, version: str, new_id: str) -> bool:
    """Every aggregator on version, with every checker's vote on new_id."""
    for address in f.aggregator_addresses:
        with f.channel(address) as channel:
            resp = pb_grpc.HealthStub(channel).Query(pb.QueryRequest(), timeout=1)
        new = [c for c in resp.checks if c.check_id == new_id]
        if resp.registry_version != version or not new \
                or new[0].reporting_votes != len(CHECKERS) \
                or new[0].status != pb.STATUS_UNHEALTHY:
            return False
    return True
