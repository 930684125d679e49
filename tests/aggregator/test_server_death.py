"""A gRPC server that dies unasked takes its process with it (exit 3), at once.

grpcio's aio server loop dies on a HEADERS frame whose ``:path`` is not
UTF-8. The aggregator process must then exit non-zero so that systemd or
Kubernetes restarts it, instead of staying up with nobody serving; and the
attacker's bytes must not reach the log verbatim. With mutual TLS a
stranger cannot get that far: the frame never passes the handshake.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import h2.config
import h2.connection
import pytest
from healthplane.deploy.ports import free_port, grpc_serving

from healthplane.certs import write_fleet_certs
from tests.aggregator.conftest import make_fleet

pytestmark = pytest.mark.timeout(90)

BAD_PATH = b"/\xff\xfe\x80\x1b[31mforged\nlog line"


def malformed_frame() -> bytes:
    """Client preface, SETTINGS and one HEADERS frame with a non-UTF-8 :path."""
    cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                    normalize_outbound_headers=False, header_encoding=None)
    conn = h2.connection.H2Connection(cfg)
    conn.initiate_connection()
    conn.send_headers(1, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", BAD_PATH),
                          (b":authority", b"x"), (b"content-type", b"application/grpc"),
                          (b"te", b"trailers")])
    return conn.data_to_send()


def _configs(tmp: Path, port: int) -> tuple[Path, Path]:
    checks = tmp / "checks.yaml"
    checks.write_text("checks:\n  - {id: web-1, type: tcp, host: 192.0.2.1, port: 80}\n")
    fleet = tmp / "fleet.yaml"
    regions = "\n".join(f"  {r}: [{', '.join(ids)}]" for r, ids in make_fleet().regions.items())
    fleet.write_text(f"regions:\n{regions}\naggregators: ['127.0.0.1:{port}']\n")
    return checks, fleet


def _start(tmp: Path, tls: bool) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    checks, fleet = _configs(tmp, port)
    argv = [sys.executable, "-m", "healthplane", "aggregator", "--checks", str(checks),
            "--fleet", str(fleet), "--listen", f"127.0.0.1:{port}"]
    certs = tmp / "certs"
    if tls:
        write_fleet_certs(certs, ["use1-a"], [f"127.0.0.1:{port}"])
        argv += ["--tls-cert", str(certs / "aggregator.pem"),
                 "--tls-key", str(certs / "aggregator-key.pem"), "--tls-ca", str(certs / "ca.pem")]
    log = open(tmp / "aggregator.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    creds = None
    if tls:
        import grpc
        creds = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes(),
                                             (certs / "dns-key.pem").read_bytes(),
                                             (certs / "dns.pem").read_bytes())
    while not grpc_serving(f"127.0.0.1:{port}", credentials=creds):
        assert proc.poll() is None, (tmp / "aggregator.log").read_text()
        assert time.monotonic() < deadline, "aggregator not serving"
        time.sleep(0.1)
    return proc, port, certs


def _send_plain(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        time.sleep(0.3)


def _send_tls(port: int, data: bytes, ca: Path, cert: Path | None, key: Path | None) -> bool:
    """True when the server took the connection (answered with HTTP/2 bytes)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["h2"])
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(data)
                # TLS 1.3 finishes the client's side of the handshake before the
                # server has judged its certificate: the refusal shows up here,
                # as an alert or a closed connection instead of SETTINGS.
                return bool(s.recv(1))
        except (ssl.SSLError, OSError):
            return False


def _exit_within(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_malformed_frame_makes_the_plaintext_aggregator_exit_non_zero(tmp_path: Path) -> None:
    frame = malformed_frame()
    assert 100 <= len(frame) <= 200
    proc, port, _ = _start(tmp_path, tls=False)
    try:
        sent = time.monotonic()
        _send_plain(port, frame)
        code = _exit_within(proc, 10)
        assert code == 3, "the aggregator kept running without a gRPC server"
        assert time.monotonic() - sent < 10
    finally:
        _stop(proc)
    out = (tmp_path / "aggregator.log").read_bytes()
    assert b"exiting so that a supervisor restarts" in out
    # Neither the raw bytes nor a traceback echoing them reach the log.
    assert b"\xff" not in out and b"\x1b[31m" not in out and b"forged\nlog" not in out
    assert b"Traceback" not in out


def test_stranger_cannot_send_the_frame_past_mutual_tls(tmp_path: Path) -> None:
    proc, port, certs = _start(tmp_path, tls=True)
    try:
        frame = malformed_frame()
        _send_plain(port, frame)                            # plaintext on a TLS port
        assert not _send_tls(port, frame, certs / "ca.pem", None, None)   # no client cert
        time.sleep(1.0)
        assert proc.poll() is None
        import grpc
        creds = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes(),
                                             (certs / "query-key.pem").read_bytes(),
                                             (certs / "query.pem").read_bytes())
        assert grpc_serving(f"127.0.0.1:{port}", credentials=creds)
        # An insider with a valid certificate does get through, and then the
        # process still refuses to linger without a server.
        assert _send_tls(port, frame, certs / "ca.pem", certs / "query.pem",
                         certs / "query-key.pem")
        assert _exit_within(proc, 10) == 3
    finally:
        _stop(proc)
