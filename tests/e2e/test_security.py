"""Attacks on a running fleet with mutual TLS: each is refused or dropped, answers stay.

The fleet of conftest.py runs with certificates from ``healthplane certs``.
An attacker here is a real gRPC client on loopback that lies about every
checker of the fleet (every check unhealthy); it tries without a
certificate, with another CA's, an expired one, a checker's certificate
claiming another checker, one without subjectAltNames, and a replay. After
each, the aggregators and the DNS front must still answer as before.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from healthplane.deploy.launcher import Fleet
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

from healthplane.certs import Issued, issue, new_ca

from .conftest import API_PRIMARY, PROBED_IDS, WWW, all_status, answers, wait_for

pytestmark = pytest.mark.e2e

ALL_WWW = set(WWW.values())
LIE_SECONDS = 4.0          # longer than stale_after: real votes would have expired


def _fleet_ca(f: Fleet) -> Issued:
    assert f.tls_dir is not None
    cert = x509.load_pem_x509_certificate((f.tls_dir / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((f.tls_dir / "ca-key.pem").read_bytes(), None)
    return Issued(cert, key)  # type: ignore[arg-type]


def _creds(f: Fleet, leaf: Issued | None, ca_pem: bytes | None = None) -> grpc.ChannelCredentials:
    assert f.tls_dir is not None
    root = ca_pem or (f.tls_dir / "ca.pem").read_bytes()
    if leaf is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.ssl_channel_credentials(root, leaf.key_pem(), leaf.cert_pem())


def _file_creds(f: Fleet, name: str) -> grpc.ChannelCredentials:
    tls = f.client_tls(name)
    assert tls is not None
    return tls.channel_credentials()


def _lies(f: Fleet, *, incarnation: int, first_seq: int, count: int,
          exclude: tuple[str, ...] = ()) -> list[pb.CheckerSnapshot]:
    """Snapshots for every checker of the fleet saying every check is unhealthy."""
    states = codec.encode([codec.UNHEALTHY] * f.registry.check_count)
    out = []
    for n in range(count):
        for cid in f.checker_ids:
            if cid in exclude:
                continue
            out.append(pb.CheckerSnapshot(
                checker_id=cid, region=f.region_of[cid], registry_version=f.registry.version,
                sequence=first_seq + n, incarnation=incarnation,
                sent_unix_ms=int(time.time() * 1000), check_count=f.registry.check_count,
                states=states))
    return out


def _report(address: str, creds: grpc.ChannelCredentials | None,
            messages: list[pb.CheckerSnapshot], spread: float = 0.0
            ) -> pb.ReportSummary | grpc.RpcError:
    """One Report stream carrying messages (spread over `spread` seconds)."""
    pause = spread / max(1, len(messages))

    def gen():
        for m in messages:
            yield m
            if pause:
                time.sleep(pause)

    channel = (grpc.insecure_channel(address) if creds is None
               else grpc.secure_channel(address, creds))
    with channel:
        call = channel.stream_unary("/healthplane.v1.Ingest/Report",
                                    request_serializer=pb.CheckerSnapshot.SerializeToString,
                                    response_deserializer=pb.ReportSummary.FromString)
        try:
            return call(gen(), timeout=spread + 5)
        except grpc.RpcError as exc:
            return exc


def _query(address: str, creds: grpc.ChannelCredentials | None) -> pb.QueryResponse | grpc.RpcError:
    channel = (grpc.insecure_channel(address) if creds is None
               else grpc.secure_channel(address, creds))
    with channel:
        try:
            return channel.unary_unary(
                "/healthplane.v1.Health/Query",
                request_serializer=pb.QueryRequest.SerializeToString,
                response_deserializer=pb.QueryResponse.FromString)(pb.QueryRequest(), timeout=3)
        except grpc.RpcError as exc:
            return exc


def _dropped(f: Fleet, index: int, reason: str) -> float:
    port = f.aggregator_http_ports[index]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
        text = r.read().decode()
    pattern = ('^healthplane_aggregator_snapshots_dropped_total'
               + re.escape('{reason="' + reason + '"}') + r" (\S+)$")
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def _assert_answers_unchanged(f: Fleet) -> None:
    for i in range(len(f.aggregators)):
        assert all_status(f, i) == dict.fromkeys(PROBED_IDS, "healthy"), f"aggregator {i}"
    assert answers(f, "www.example.test") == ALL_WWW
    assert answers(f, "api.example.test") == {API_PRIMARY}


def _lie_to_every_aggregator(f: Fleet, creds: grpc.ChannelCredentials | None,
                             **kw: object) -> list[pb.ReportSummary | grpc.RpcError]:
    """Stream lies for LIE_SECONDS to each aggregator, checking the answers meanwhile."""
    import threading
    results: list[pb.ReportSummary | grpc.RpcError] = []
    count = kw.pop("count", 20)

    def run(address: str) -> None:
        results.append(_report(address, creds, _lies(f, count=count, **kw),  # type: ignore[arg-type]
                               LIE_SECONDS))

    threads = [threading.Thread(target=run, args=(a,)) for a in f.aggregator_addresses]
    for t in threads:
        t.start()
    deadline = time.monotonic() + LIE_SECONDS
    while time.monotonic() < deadline:
        _assert_answers_unchanged(f)
        time.sleep(0.3)
    for t in threads:
        t.join(LIE_SECONDS + 10)
    _assert_answers_unchanged(f)
    return results


LIE = {"incarnation": 1 << 62, "first_seq": 1}


def test_no_certificate_is_refused(fleet: Fleet) -> None:
    for creds in (None, _creds(fleet, None)):   # plaintext, and TLS without a client cert
        for address in fleet.aggregator_addresses:
            got = _report(address, creds, _lies(fleet, count=1, **LIE))
            assert isinstance(got, grpc.RpcError)
            assert got.code() == grpc.StatusCode.UNAVAILABLE
            # The Health API hands out topology: it needs a certificate too.
            q = _query(address, creds)
            assert isinstance(q, grpc.RpcError) and q.code() == grpc.StatusCode.UNAVAILABLE
    _assert_answers_unchanged(fleet)


def test_another_cas_certificate_is_refused(fleet: Fleet) -> None:
    other = new_ca("someone else's CA")
    leaf = issue(other, "use1-a", ["use1-a"])
    # Trusting the fleet's CA for the server, showing a client cert it did not sign.
    got = _report(fleet.aggregator_addresses[0], _creds(fleet, leaf), _lies(fleet, count=1, **LIE))
    assert isinstance(got, grpc.RpcError) and got.code() == grpc.StatusCode.UNAVAILABLE
    _assert_answers_unchanged(fleet)


def test_expired_certificate_is_refused(fleet: Fleet) -> None:
    ca = _fleet_ca(fleet)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    leaf = issue(ca, "use1-a", ["use1-a"], days=1, not_before=start)
    got = _report(fleet.aggregator_addresses[0], _creds(fleet, leaf), _lies(fleet, count=1, **LIE))
    assert isinstance(got, grpc.RpcError) and got.code() == grpc.StatusCode.UNAVAILABLE
    _assert_answers_unchanged(fleet)


def test_checker_certificate_claiming_other_checkers_is_dropped(fleet: Fleet) -> None:
    """The issue's impersonation: lies under every checker id, with use1-a's certificate."""
    before = [_dropped(fleet, i, "identity_mismatch") for i in range(len(fleet.aggregators))]
    others = [c for c in fleet.checker_ids if c != "use1-a"]
    # Its own id is its own business (a stolen key speaks for its checker):
    # the claims here are only the ones the certificate cannot back.
    results = _lie_to_every_aggregator(fleet, _file_creds(fleet, "checker-use1-a"),
                                       exclude=("use1-a",), **LIE)
    for r in results:
        # The stream itself is served and ends normally; every claim is dropped.
        assert isinstance(r, pb.ReportSummary), r
        assert (r.accepted, r.dropped) == (0, 20 * len(others))
    after = [_dropped(fleet, i, "identity_mismatch") for i in range(len(fleet.aggregators))]
    assert all(a - b >= 20 * len(others) for a, b in zip(after, before, strict=True))


def test_certificate_without_sans_claims_nothing(fleet: Fleet) -> None:
    leaf = issue(_fleet_ca(fleet), "use1-a", [])       # common name only: never counts
    results = _lie_to_every_aggregator(fleet, _creds(fleet, leaf), **LIE)
    for r in results:
        assert isinstance(r, pb.ReportSummary), r
        assert r.accepted == 0 and r.dropped == 20 * len(fleet.checker_ids)


def test_dns_or_query_certificate_cannot_vote(fleet: Fleet) -> None:
    results = _lie_to_every_aggregator(fleet, _file_creds(fleet, "dns"), **LIE)
    assert all(isinstance(r, pb.ReportSummary) and r.accepted == 0 for r in results)


def test_replay_of_an_older_snapshot_is_dropped(fleet: Fleet) -> None:
    """An insider with checker certificates replays old snapshots: none lands."""
    before = [_dropped(fleet, i, "stale_sequence") for i in range(len(fleet.aggregators))]
    # Incarnation 1: a run of each checker long before the ones now running.
    old = {"incarnation": 1, "first_seq": 1_000_000}
    for cid in fleet.checker_ids:
        creds = _file_creds(fleet, f"checker-{cid}")
        msgs = [m for m in _lies(fleet, count=5, **old) if m.checker_id == cid]
        for address in fleet.aggregator_addresses:
            got = _report(address, creds, msgs)
            assert isinstance(got, pb.ReportSummary), got
            assert (got.accepted, got.dropped) == (0, 5)
    after = [_dropped(fleet, i, "stale_sequence") for i in range(len(fleet.aggregators))]
    assert all(a - b >= 5 * len(fleet.checker_ids) for a, b in zip(after, before, strict=True))
    _assert_answers_unchanged(fleet)


def test_fleet_certificates_are_what_the_readme_says(fleet: Fleet) -> None:
    d = fleet.tls_dir
    assert isinstance(d, Path)
    agg = x509.load_pem_x509_certificate((d / "aggregator.pem").read_bytes())
    sans = agg.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert any(str(ip) == "127.0.0.1" for ip in sans.get_values_for_type(x509.IPAddress))
    for cid in fleet.checker_ids:
        c = x509.load_pem_x509_certificate((d / f"checker-{cid}.pem").read_bytes())
        names = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [cid]
    assert (d / "ca-key.pem").stat().st_mode & 0o077 == 0
    wait_for(lambda: all_status(fleet) == dict.fromkeys(PROBED_IDS, "healthy"), 10,
             what="still healthy")


def test_query_command_needs_and_uses_a_certificate(fleet: Fleet) -> None:
    import subprocess
    import sys
    address = fleet.aggregator_addresses[0]
    base = [sys.executable, "-m", "healthplane", "query", "--aggregator", address]
    ok = subprocess.run([*base, *fleet.tls_flags("query")], capture_output=True, text=True,
                        timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert "web-1" in ok.stdout
    plain = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr


def test_malformed_frame_the_fleet_keeps_answering(fleet: Fleet) -> None:
    """The 139-byte packet: a stranger cannot deliver it past TLS; an insider who
    does takes one aggregator down with a non-zero exit (a supervisor restarts
    it), and the DNS front answers from the other one meanwhile."""
    from tests.aggregator.test_server_death import _send_plain, _send_tls, malformed_frame

    assert fleet.tls_dir is not None
    frame = malformed_frame()
    proc = fleet.aggregators[0]
    port = int(fleet.aggregator_addresses[0].rsplit(":", 1)[1])
    _send_plain(port, frame)
    assert not _send_tls(port, frame, fleet.tls_dir / "ca.pem", None, None)
    time.sleep(1.0)
    assert proc.alive()
    _assert_answers_unchanged(fleet)
    assert _send_tls(port, frame, fleet.tls_dir / "ca.pem", fleet.tls_dir / "query.pem",
                     fleet.tls_dir / "query-key.pem")
    assert proc.popen is not None
    assert proc.popen.wait(10) == 3
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert answers(fleet, "www.example.test") == ALL_WWW
        assert answers(fleet, "api.example.test") == {API_PRIMARY}
        time.sleep(0.3)
    fleet.start_aggregator(0)        # what systemd's Restart=always does
    wait_for(lambda: all_status(fleet, 0) == dict.fromkeys(PROBED_IDS, "healthy"), 30,
             what="the restarted aggregator healthy again")


def test_pdns_backend_follows_the_fleet_over_mutual_tls(fleet: Fleet, tmp_path: Path) -> None:
    import json
    import socket
    import subprocess
    import sys
    assert fleet.zone is not None
    sock = str(tmp_path / "pdns.sock")
    log = tmp_path / "pdns.log"
    argv = [sys.executable, "-m", "healthplane", "pdns-backend", "--zone", str(fleet.zone),
            "--socket", sock, *fleet.tls_flags("pdns-backend")]
    for address in fleet.aggregator_addresses:
        argv += ["--aggregator", address]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "following aggregator" in log.read_text(), 20,
                 what="pdns-backend following an aggregator")
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            s.sendall(json.dumps({"method": "lookup", "parameters": {
                "qname": "www.example.test.", "qtype": "A"}}).encode() + b"\n")
            reply = json.loads(s.makefile().readline())
        assert {r["content"] for r in reply["result"]} == ALL_WWW
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in log.read_text()
