"""grpc probes of TLS servers (tls, verify_tls, hostname as SNI/authority) and
certificate expiry, against real grpc.aio servers with test-made certificates."""

from __future__ import annotations

import math
import ssl
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from healthplane.checker.probes import Outcome, make_prober
from healthplane.checker.probes.grpc import GrpcProber
from healthplane.proto.config.model import Check

from tests.checker.loops import LOOPS, run_on
from tests.checker.tlsutil import Cert, self_signed

pytestmark = pytest.mark.timeout(30)


def grpc_check(port: int, **kw) -> Check:
    fields = dict(id="rpc", type="grpc", host="127.0.0.1", port=port, timeout=2.0,
                  interval=10.0)
    fields.update(kw)
    return Check(**fields)


async def _server(cert: Cert | None) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if cert is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = grpc.ssl_server_credentials([(cert.key_pem, cert.cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    await servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
    return server, port


def _trusting(prober: GrpcProber, cert: Cert) -> GrpcProber:
    ctx = ssl.create_default_context(cafile=str(cert.cert_file))
    ctx.set_alpn_protocols(["h2"])
    prober.ssl_context = ctx
    return prober


@pytest.mark.parametrize("loop", LOOPS)
def test_tls_server_unverified_and_verified(loop: str, tmp_path: Path) -> None:
    cert = self_signed(tmp_path, days=10, name="rpc.example.test")

    async def scenario():
        server, port = await _server(cert)
        try:
            plain = await make_prober(grpc_check(port, tls=True), allow_private=True)()
            down = await make_prober(grpc_check(port, tls=True, grpc_service="down"),
                                     allow_private=True)()
            untrusted = await make_prober(
                grpc_check(port, tls=True, verify_tls=True, hostname="rpc.example.test"),
                allow_private=True)()
            trusted = await _trusting(make_prober(  # type: ignore[arg-type]
                grpc_check(port, tls=True, verify_tls=True, hostname="rpc.example.test"),
                allow_private=True), cert)()
            wrong_name = await _trusting(make_prober(  # type: ignore[arg-type]
                grpc_check(port, tls=True, verify_tls=True, hostname="other.example.test"),
                allow_private=True), cert)()
            cleartext = await make_prober(grpc_check(port), allow_private=True)()
        finally:
            await server.stop(None)
        return plain, down, untrusted, trusted, wrong_name, cleartext
    plain, down, untrusted, trusted, wrong_name, cleartext = run_on(loop, scenario)
    assert (plain.outcome, plain.reason) == (Outcome.OK, "ok")
    assert plain.cert_not_after == cert.not_after
    assert (down.outcome, down.reason) == (Outcome.FAILED, "not serving")
    assert down.cert_not_after == cert.not_after
    assert (untrusted.outcome, untrusted.reason) == (Outcome.TLS_ERROR,
                                                     "tls error: self-signed certificate")
    assert (trusted.outcome, trusted.reason) == (Outcome.OK, "ok")
    assert trusted.cert_not_after == cert.not_after
    assert (wrong_name.outcome, wrong_name.reason) == (Outcome.TLS_ERROR,
                                                       "tls error: hostname mismatch")
    assert not cleartext.ok and math.isnan(cleartext.cert_not_after)


@pytest.mark.parametrize("loop", LOOPS)
def test_tls_probe_of_a_plaintext_server_fails(loop: str) -> None:
    async def scenario():
        server, port = await _server(None)
        try:
            return await make_prober(grpc_check(port, tls=True), allow_private=True)()
        finally:
            await server.stop(None)
    result = run_on(loop, scenario)
    assert result.outcome in (Outcome.TLS_ERROR, Outcome.RESET), result.reason


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("garbage", [b"HTTP/1.1 200 OK\r\n\r\n", b"\x00" * 9 + b"\xff" * 200,
                                     b"\x00\x00\x04\x04\x00\x00\x00\x00\x00" * 2000])
def test_garbage_instead_of_http2_is_a_bad_response(loop: str, garbage: bytes) -> None:
    import asyncio

    async def scenario():
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.write(garbage)
            await writer.drain()
            await reader.read()
            writer.close()
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await make_prober(grpc_check(port, timeout=1.0), allow_private=True)()
        finally:
            server.close()
    result = run_on(loop, scenario)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "bad response")
