"""grpc probe: ``grpc.health.v1.Health/Check`` must answer SERVING in time.

The call is made by hand over HTTP/2 (the h2 library, sans-IO) on the same
connection machinery as the http and tcp probes (see :mod:`.stream`): one
new connection per probe, one request, no retries, one deadline. A
grpc.aio channel per probe cannot probe a TLS server without verifying it,
nor tell us the certificate the server presented; this can. It is also a
little cheaper: against a local grpc.aio health server on uvloop, 2,000
probes, 20 at a time, measured about 1,700 probes per CPU-second against
1,400 with a grpc.aio channel per probe (h2 is pure Python: a far cry from
the http probe's several thousand; gRPC checks are expected to be few).

With ``tls: true`` the connection is TLS with ALPN ``h2`` (gRPC servers
require it), verified only when ``verify_tls`` is set, as for https; SNI
and ``:authority`` are the check's ``hostname`` (default its host). Every
TLS probe records the certificate's expiry. The address dialled is the
one we resolved and checked against the target policy ourselves.

Bounded: at most ``RESPONSE_LIMIT`` bytes are read; the answer is a few.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

import h2.config
import h2.connection
import h2.events
from grpc_health.v1 import health_pb2
from healthplane.proto.config.model import Check

from . import stream
from .base import Outcome, Prober
from .certs import peer_not_after

RESPONSE_LIMIT = 64 * 1024
_PATH = b"/grpc.health.v1.Health/Check"
_CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None)
_SERVING = health_pb2.HealthCheckResponse.SERVING

# grpc-status codes with a reason of their own (others: "grpc CODE_NAME").
_STATUS_REASON = {
    b"4": (Outcome.TIMEOUT, "timeout"),
    b"5": (Outcome.FAILED, "service unknown"),
    b"12": (Outcome.FAILED, "health service missing"),
    b"14": (Outcome.FAILED, "unavailable"),
    b"1": (Outcome.ERROR, "cancelled"),
}
_CODE_NAMES = ("ok", "cancelled", "unknown", "invalid_argument", "deadline_exceeded",
               "not_found", "already_exists", "permission_denied", "resource_exhausted",
               "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal",
               "unavailable", "data_loss", "unauthenticated")


def _status_verdict(code: bytes) -> tuple[Outcome, str]:
    known = _STATUS_REASON.get(code)
    if known is not None:
        return known
    try:
        name = _CODE_NAMES[int(code)]
    except (ValueError, IndexError):
        name = "status " + code.decode("ascii", "replace")[:8]
    return Outcome.FAILED, f"grpc {name}"


def _body_verdict(body: bytes) -> tuple[Outcome, str]:
    # One length-prefixed message: flag byte (0: not compressed), 4-byte length.
    if len(body) < 5 or body[0] != 0 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        return Outcome.FAILED, "bad response"
    try:
        reply = health_pb2.HealthCheckResponse.FromString(body[5:])
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
        return Outcome.FAILED, "bad response"
    if reply.status == _SERVING:
        return Outcome.OK, "ok"
    try:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except ValueError:
        name = f"status {reply.status}"
    return Outcome.FAILED, name.lower().replace("_", " ")


class _HealthCall(stream.Exchange):
    """One Health/Check call on a fresh HTTP/2 connection."""

    __slots__ = ("prober", "conn", "body", "seen", "preface")

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float, prober: GrpcProber) -> None:
        super().__init__(loop, t0)
        self.prober = prober
        self.conn: h2.connection.H2Connection | None = None
        self.body = bytearray()
        self.seen = 0
        self.preface = b""    # the server's first frame header, until checked

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream = cast(asyncio.Transport, transport)  # see Exchange
        if self.prober.ssl_context is not None:
            self.cert = peer_not_after(stream)
        if self.fut.done():
            stream.abort()
            return
        conn = self.conn = h2.connection.H2Connection(config=_CONFIG)
        conn.initiate_connection()
        conn.send_headers(1, self.prober.headers)
        conn.send_data(1, self.prober.message, end_stream=True)
        stream.write(conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self.fut.done() or self.conn is None:
            return
        self.seen += len(data)
        if self.seen > RESPONSE_LIMIT:
            self.finish(Outcome.FAILED, "bad response")
            return
        if len(self.preface) < 9:
            # RFC 9113 3.4: the server's first frame is SETTINGS on stream 0.
            # h2 would wait for the rest of a "frame" as long as the bytes of
            # an HTTP/1 answer say (megabytes): judge it here instead.
            self.preface += data[:9 - len(self.preface)]
            if len(self.preface) == 9 and (self.preface[3] != 4 or
                                           self.preface[5:9] != b"\0\0\0\0"):
                self.finish(Outcome.FAILED, "bad response")
                return
        try:
            events = self.conn.receive_data(data)
        except Exception:  # noqa: BLE001 - h2's ProtocolError family, hpack's, any: one verdict
            self.finish(Outcome.FAILED, "bad response")
            return
        for event in events:
            self._event(event)
            if self.fut.done():
                return
        pending = self.conn.data_to_send()   # SETTINGS and PING acknowledgements
        if pending and self.transport is not None:
            self.transport.write(pending)

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            headers = dict(event.headers)
            if headers.get(b":status") != b"200":
                status = headers.get(b":status", b"?").decode("ascii", "replace")[:8]
                self.finish(Outcome.FAILED, f"status {status}")
            elif b"grpc-status" in headers:       # a trailers-only answer
                self._trailers(headers)
        elif isinstance(event, h2.events.DataReceived):
            self.body += event.data
        elif isinstance(event, h2.events.TrailersReceived):
            self._trailers(dict(event.headers))
        elif isinstance(event, h2.events.StreamReset):
            self.finish(Outcome.RESET, "reset")
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.finish(Outcome.FAILED, "unavailable")

    def _trailers(self, headers: dict[bytes, bytes]) -> None:
        code = headers.get(b"grpc-status", b"")
        if code == b"0":
            self.finish(*_body_verdict(bytes(self.body)))
        else:
            self.finish(*_status_verdict(code))

    def finish(self, outcome: Outcome, reason: str) -> None:
        super().finish(outcome, reason)
        self.conn = None


_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def tls_context(verify: bool) -> ssl.SSLContext:
    """One shared client context per verification mode, offering ALPN h2."""
    ctx = _CONTEXTS.get(verify)
    if ctx is None:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        _CONTEXTS[verify] = ctx
    return ctx


class GrpcProber(stream.StreamProber):
    """Probes one grpc check. Build once per check, call once per slot."""

    __slots__ = ("headers", "message")

    def __init__(self, check: Check, *, allow_private: bool) -> None:
        if check.host is None or check.port is None:
            raise ValueError(f"check {check.id!r}: a grpc check needs host and port")
        ssl_context = server_hostname = None
        if check.tls:
            ssl_context = tls_context(check.verify_tls)
            server_hostname = (check.hostname or check.host).strip("[]")
        super().__init__(check.host, check.port, check.timeout, allow_private=allow_private,
                         ssl_context=ssl_context, server_hostname=server_hostname,
                         family=check.ip_family)
        host = check.host if ":" not in check.host else f"[{check.host.strip('[]')}]"
        authority = check.hostname or f"{host}:{check.port}"
        self.headers = [
            (b":method", b"POST"),
            (b":scheme", b"https" if check.tls else b"http"),
            (b":path", _PATH),
            (b":authority", authority.encode("ascii", "replace")),  # names are ASCII
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"grpc-timeout", f"{max(1, int(check.timeout * 1000))}m".encode("ascii")),
            (b"user-agent", b"healthplane-checker"),
        ]
        payload = health_pb2.HealthCheckRequest(service=check.grpc_service).SerializeToString()
        self.message = b"\x00" + len(payload).to_bytes(4, "big") + payload

    def exchange(self, loop: asyncio.AbstractEventLoop) -> stream.Exchange:
        return _HealthCall(loop, loop.time(), self)


def make_prober(check: Check, *, allow_private: bool) -> Prober:
    """A prober for a ``type: grpc`` check."""
    return GrpcProber(check, allow_private=allow_private)
