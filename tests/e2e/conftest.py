"""A real fleet on loopback for the end-to-end tests, and the clients they use.

One fleet per module (process start-up is the slow part): probe targets,
three single-checker regions, two aggregators and the DNS front, each a
separate process started by deploy.launcher, with short intervals so that
a failure is detected within seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.rdatatype
import dns.resolver
import grpc
import pytest
from healthplane.deploy.launcher import Fleet, TargetsOptions, free_ports, leftover_pids
from healthplane.proto.codec import state_name
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

INTERVAL = 1.0
FAILURE_THRESHOLD = 2
REPORT_INTERVAL = 0.5
TICK = 0.5
# The contract's bound for "endpoint dies -> DNS answer changes".
DETECTION_BOUND = INTERVAL * FAILURE_THRESHOLD + REPORT_INTERVAL + TICK + 1.0

WWW = {"web-1": "192.0.2.1", "web-2": "192.0.2.2", "web-3": "192.0.2.3", "web-4": "192.0.2.4"}
API_PRIMARY, API_SECONDARY = "192.0.2.10", "192.0.2.20"
HTTP_IDS = [*WWW, "api-primary", "api-secondary"]
PROBED_IDS = [*HTTP_IDS, "db-1", "rpc-1"]
CHECKERS = {"us-east": "use1-a", "eu-west": "euw1-a", "ap-south": "aps1-a"}


def write_configs(directory: Path, control_port: int) -> tuple[Path, Path, Path]:
    """checks.yaml, fleet.yaml and zone.yaml on free loopback ports."""
    ports = iter(free_ports(len(PROBED_IDS) + 2, exclude={control_port}))
    lines = ["checks:"]
    for cid in HTTP_IDS:
        lines += [f"  - {{id: {cid}, type: http, host: 127.0.0.1, port: {next(ports)}, "
                  f"path: /health, interval: {INTERVAL}, timeout: 0.5, "
                  f"failure_threshold: {FAILURE_THRESHOLD}}}"]
    for cid, kind in (("db-1", "tcp"), ("rpc-1", "grpc")):
        lines += [f"  - {{id: {cid}, type: {kind}, host: 127.0.0.1, port: {next(ports)}, "
                  f"interval: {INTERVAL}, timeout: 0.5, failure_threshold: {FAILURE_THRESHOLD}}}"]
    checks = directory / "checks.yaml"
    checks.write_text("\n".join(lines) + "\n")
    aggregators = ", ".join(f'"127.0.0.1:{next(ports)}"' for _ in range(2))
    regions = "\n".join(f"  {r}: [{c}]" for r, c in CHECKERS.items())
    fleet = directory / "fleet.yaml"
    # The canary is the targets' control port, which stays up whatever the
    # tests do to the targets and aggregators: no checker should doubt itself.
    fleet.write_text(
        f"regions:\n{regions}\ncheckers_per_region: 1\naggregators: [{aggregators}]\n"
        f"report_interval: {REPORT_INTERVAL}\ntick: {TICK}\nstale_after: 1.5\n"
        f"healthy_fraction: 0.18\nunknown_as: last_known\n"
        f'canaries: ["127.0.0.1:{control_port}"]\nallow_private_targets: true\n')
    www = "\n".join(f"      - {{value: {ip}, check: {cid}}}" for cid, ip in WWW.items())
    zone = directory / "zone.yaml"
    zone.write_text(
        "zone: example.test.\nttl: 5\nrecords:\n"
        "  - name: api.example.test.\n    type: A\n    policy: failover\n"
        f"    primary: {{value: {API_PRIMARY}, check: api-primary}}\n"
        f"    secondary: {{value: {API_SECONDARY}, check: api-secondary}}\n"
        "  - name: www.example.test.\n    type: A\n    policy: multivalue\n"
        f"    values:\n{www}\n")
    return checks, fleet, zone


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("fleet")
    control = free_ports(1)[0]
    checks, fleet_yaml, zone = write_configs(directory, control)
    f = Fleet(checks, fleet_yaml, zone, run_dir=directory / "run",
              targets=TargetsOptions(control=f"127.0.0.1:{control}"), ready_timeout=60)
    with f:
        for i in range(len(f.aggregators)):
            wait_for(lambda i=i: all_status(f, i) == dict.fromkeys(PROBED_IDS, "healthy"), 30,
                     what=f"every check healthy on aggregator {i}")
        # The DNS front answers (SERVFAIL before) from its first warm snapshot.
        wait_for(lambda: answers(f, "www.example.test") == set(WWW.values()), 30,
                 what="the DNS front answering from a warm snapshot")
        yield f
    assert leftover_pids(f.run_dir) == [], "the fleet left processes behind"


def wait_for(predicate: Callable[[], bool], timeout: float, *, what: str,
             every: float = 0.05) -> float:
    """Seconds until predicate() held; fails the test after timeout."""
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except (grpc.RpcError, dns.exception.DNSException, OSError):
            pass
        if time.monotonic() - start > timeout:
            pytest.fail(f"not {what} after {timeout:.1f} s")
        time.sleep(every)


def query(f: Fleet, index: int | None = None) -> pb.QueryResponse:
    """Health.Query on one aggregator (default: the first that answers)."""
    addresses = f.aggregator_addresses if index is None else [f.aggregator_addresses[index]]
    error: grpc.RpcError | None = None
    for address in addresses:
        with f.channel(address) as channel:
            try:
                return pb_grpc.HealthStub(channel).Query(pb.QueryRequest(), timeout=1)
            except grpc.RpcError as e:
                error = e
    assert error is not None
    raise error


def all_status(f: Fleet, index: int | None = None) -> dict[str, str]:
    return {c.check_id: state_name(c.status) for c in query(f, index).checks}


def resolver(f: Fleet, tcp: bool = False) -> dns.resolver.Resolver:
    assert f.dns_address is not None
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [f.dns_address[0]]
    r.port = f.dns_address[1]
    r.lifetime = 2.0
    r.timeout = 1.0
    return r


def answers(f: Fleet, name: str, rtype: str = "A", tcp: bool = False) -> set[str]:
    """The addresses dnspython's resolver gets from the DNS front (empty on NODATA)."""
    try:
        reply = resolver(f).resolve(name, rtype, tcp=tcp, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return set()
    if reply.rrset is None:
        return set()
    return {item.address for item in reply.rrset if reply.rrset.rdtype in
            (dns.rdatatype.A, dns.rdatatype.AAAA)}


DIG = shutil.which("dig")


NO_DIG = "dig (Debian dnsutils) is not installed: `apt-get install dnsutils`"


def dig(f: Fleet, name: str, rtype: str = "A", tcp: bool = False) -> set[str] | None:
    """The addresses `dig +short` gets from the DNS front; None when dig is missing
    (callers skip only their dig assertions then)."""
    if DIG is None:
        return None
    assert f.dns_address is not None
    host, port = f.dns_address
    argv = [DIG, f"@{host}", "-p", str(port), "+short", "+time=2", "+tries=1", name, rtype]
    if tcp:
        argv.insert(-2, "+tcp")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}
