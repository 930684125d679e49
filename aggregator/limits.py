"""Resource bounds of the aggregator's gRPC server, and admission per client.

What a stranger can hold (one socket, a handshake) and what an
authenticated but misbehaving client can hold (streams, watchers) are each
bounded, and every bound says what happens at it:

- **connections**: at most ``max_connections`` open at once (gRPC's
  ``grpc.max_allowed_incoming_connections``); one more is closed at accept
  (gRPC does not count these for us; ``connection_limit`` shows the cap).
  The open-files limit is raised to fit them (:func:`fit_open_files`), or
  they are lowered to fit it.
- **handshakes**: a connection that has not finished TLS and HTTP/2 set-up
  within ``handshake_timeout`` is closed (``grpc.server_handshake_timeout_ms``),
  so idle sockets from a stranger cost seconds, not gRPC's default two minutes.
- **idle connections**: one with no call open for ``idle_timeout`` is closed
  (``grpc.max_connection_idle_ms``); checkers' streams and DNS watchers are
  never idle.
- **streams per connection**: ``streams_per_connection`` (HTTP/2
  MAX_CONCURRENT_STREAMS); the client waits for one to end.
- **Report streams and Watch streams**: a total cap and a cap per client
  (the DNS names of its certificate and its address; without TLS there are
  no identities and only the totals apply). One more is refused with
  RESOURCE_EXHAUSTED and counted (:attr:`Admission.refused`); the streams
  already open, and everyone else's, go on.
- **calls in all**: ``grpc.aio.server(maximum_concurrent_rpcs=...)``, the
  stream caps plus room for short unary calls (Get, Query, health checks).
  A watcher that never reads pins one message and its stream's flow-control
  window until its client goes; the Watch caps bound how many can.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace

import grpc

log = logging.getLogger("healthplane.aggregator")

# Descriptors besides client connections: the listening sockets, the metrics
# server and its scrapers, the snapshot file, the reload child's pipes, logs.
RESERVE = 128


@dataclass(frozen=True)
class Limits:
    """The server's bounds; 0 for max_streams means: derived from the fleet."""

    max_connections: int = 2048
    max_streams: int = 0
    max_streams_per_peer: int = 4
    max_watchers: int = 64
    max_watchers_per_peer: int = 4
    max_unary: int = 64
    streams_per_connection: int = 16
    handshake_timeout: float = 5.0
    idle_timeout: float = 60.0

    def for_fleet(self, checkers: int) -> Limits:
        """Fill in max_streams: two per checker (a reconnect may overlap) plus room."""
        if self.max_streams:
            return self
        return replace(self, max_streams=2 * checkers + 16)

    def max_rpcs(self) -> int:
        return self.max_streams + self.max_watchers + self.max_unary

    def server_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_allowed_incoming_connections", self.max_connections),
            ("grpc.server_handshake_timeout_ms", int(self.handshake_timeout * 1000)),
            ("grpc.max_connection_idle_ms", int(self.idle_timeout * 1000)),
            ("grpc.max_concurrent_streams", self.streams_per_connection),
            # Find dead peers: ping after 20 s of silence, give up 10 s later.
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # Clients may ping every 5 s while a call is open (the DNS consumer
            # pings every 10 s); faster pingers get GOAWAY after two strikes.
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.keepalive_permit_without_calls", 0),
        ]


def fit_open_files(limits: Limits) -> Limits:
    """Raise the soft open-files limit to fit the connections, or lower them to fit it."""
    from healthplane.runtime.fdlimit import ensure_open_files

    soft = ensure_open_files(limits.max_connections + RESERVE)
    room = soft - RESERVE
    if room >= limits.max_connections:
        return limits
    fitted = max(16, room)
    log.warning("open-files limit too low for the connection cap: lowering it (raise "
                "`ulimit -Hn`, or LimitNOFILE under systemd)",
                extra={"open_files": soft, "connections": fitted,
                       "wanted": limits.max_connections})
    return replace(limits, max_connections=fitted)


def peer_key(context: grpc.aio.ServicerContext, authenticated: bool) -> str | None:
    """Who a call comes from, for per-client caps; None without TLS (no identity).

    The certificate's names and the peer's address: DNS fronts on several
    hosts may share one certificate without sharing one budget, while one
    client holding one certificate gets one.
    """
    if not authenticated:
        return None
    auth = context.auth_context()
    names = auth.get("peer_dns") or auth.get("x509_subject") or ()
    who = ",".join(sorted(v.decode("ascii", "replace") for v in names)) or "?"
    return f"{who}@{_peer_host(context.peer() or '')}"


def _peer_host(peer: str) -> str:
    """The address of a gRPC peer string: ipv4:1.2.3.4:5 -> 1.2.3.4, ipv6:[::1]:5 -> ::1."""
    _, _, rest = peer.partition(":")
    host = rest.rsplit(":", 1)[0] if rest.count(":") >= 1 else rest
    return host.strip("[]")


class Admission:
    """Open streams of one kind, in total and per client; refuses past the caps."""

    def __init__(self, kind: str, total: int, per_peer: int) -> None:
        self.kind = kind
        self.total = total
        self.per_peer = per_peer
        self.open = 0
        self._by_peer: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()   # "total" | "per_client"

    def acquire(self, peer: str | None) -> str | None:
        """Take a slot; None when admitted, else the refusal message (counted)."""
        if self.open >= self.total:
            self.refused["total"] += 1
            return f"too many {self.kind} streams on this aggregator (limit {self.total})"
        if peer is not None and self._by_peer[peer] >= self.per_peer:
            self.refused["per_client"] += 1
            return f"too many {self.kind} streams from this client (limit {self.per_peer})"
        self.open += 1
        if peer is not None:
            self._by_peer[peer] += 1
        return None

    def release(self, peer: str | None) -> None:
        self.open -= 1
        if peer is not None:
            self._by_peer[peer] -= 1
            if self._by_peer[peer] <= 0:
                del self._by_peer[peer]
