"""The connection machinery shared by the tcp, http and grpc probes.

This is the checker's hot path: at thousands of probes per second the cost
of every allocation and every await shows. So a probe is one plain
``asyncio.Protocol`` object (an :class:`Exchange`) driven by the event loop's
callbacks, one ``loop.create_connection`` await, one future, and one timer
handle from ``loop.call_at``. ``asyncio.wait_for`` (a task per call) and
``asyncio.timeout`` (a context manager and a cancellation per call) cost
noticeably more, so the deadline is a bare timer that either cancels the
connect or resolves the future with "timeout". It works the same on the
default loop and on uvloop.

The whole probe (name resolution, connect, TLS handshake, and whatever the
kind reads afterwards) fits in one deadline, and there is exactly one
connection attempt: no retries, ever. ``ip_family`` narrows a name's
addresses to one family before the attempt; IP literals are narrowed once.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import struct
from time import monotonic
from typing import cast

from .address import RESOLVER, Family, literal
from .base import NO_CERT, Outcome, ProbeResult

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)   # struct linger {l_onoff=1, l_linger=0}
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN,
                          errno.ENETDOWN})


def connect_reason(exc: BaseException) -> tuple[Outcome, str]:
    """The outcome and a short reason for an exception raised while connecting or talking."""
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.REFUSED, "refused"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return Outcome.RESET, "reset"
    if isinstance(exc, ssl.SSLCertVerificationError):
        # "Hostname mismatch, certificate is not valid for 'x'." -> "hostname mismatch":
        # a stable phrase to group by, not text that repeats the target's names.
        detail = (exc.verify_message or "certificate verify failed").split(",")[0]
        return Outcome.TLS_ERROR, f"tls error: {detail.rstrip('.').lower()[:60]}"
    if isinstance(exc, ssl.SSLError):
        return (Outcome.TLS_ERROR,
                f"tls error: {exc.reason or exc.strerror or 'handshake failed'}".lower())
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT, "timeout"
    if isinstance(exc, OSError):
        if exc.errno in _UNREACHABLE:
            return Outcome.UNREACHABLE, "unreachable"
        if exc.errno == errno.ECONNREFUSED:   # uvloop raises plain OSError sometimes
            return Outcome.REFUSED, "refused"
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return Outcome.RESET, "reset"
        return Outcome.ERROR, f"connect error: {(exc.strerror or str(exc)).lower()}"
    return Outcome.ERROR, f"error: {type(exc).__name__}"


class Exchange(asyncio.Protocol):
    """One probe's connection: the protocol, the verdict future and the deadline.

    Subclasses override :meth:`connection_made` to talk and call
    :meth:`finish` with the verdict. The object is its own protocol factory,
    so connecting allocates no closure.
    """

    __slots__ = ("loop", "t0", "started", "fut", "transport", "connecting", "expired", "task",
                 "cert")

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float) -> None:
        self.loop = loop
        self.t0 = t0                        # loop time: the deadline is t0 + timeout
        # uvloop's clock ticks in milliseconds; latency wants a finer one.
        self.started = monotonic()
        self.fut: asyncio.Future[ProbeResult] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.connecting = True
        self.expired = False
        self.task: asyncio.Task | None = None
        self.cert = NO_CERT                 # TLS kinds set it once the handshake is done

    def __call__(self) -> Exchange:
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection always hands a stream transport.
        self.transport = stream = cast(asyncio.Transport, transport)
        if self.fut.done():                 # the deadline passed while connecting
            stream.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.fut.done():
            if exc is None:
                self.finish(Outcome.RESET, "closed")
            else:
                self.finish(*connect_reason(exc))

    def finish(self, outcome: Outcome, reason: str) -> None:
        """Record the verdict (first one wins) and drop the connection."""
        fut = self.fut
        if not fut.done():
            fut.set_result(ProbeResult(outcome, monotonic() - self.started, reason, self.cert))
        transport = self.transport
        if transport is not None:
            self.transport = None
            # Close with a reset (SO_LINGER 0), as HAProxy's checks do: a
            # normal close leaves the checker a TIME_WAIT socket per probe for
            # 60 s, 150,000 of them at 2,500 probes/s, which fills the
            # kernel's table and the ephemeral ports to a busy target.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                except OSError:
                    pass
            transport.abort()

    def expire(self) -> None:
        """The deadline: stop resolving/connecting at once, or fail the wait."""
        self.expired = True
        if self.connecting:
            self.task.cancel()  # type: ignore[union-attr]
        else:
            self.finish(Outcome.TIMEOUT, "timeout")


class StreamProber:
    """A prober that opens one stream connection per call; subclasses pick the talk.

    Holds what is precomputed per check; :meth:`exchange` builds the
    per-probe protocol object. ``__call__`` is the whole probe in one
    coroutine (no nested awaitables beyond the connect), since every frame
    alive for the probe's duration costs allocation and GC work when
    thousands are in flight.
    """

    __slots__ = ("host", "port", "timeout", "allow_private", "resolved", "ssl_context",
                 "server_hostname", "family")

    def __init__(self, host: str, port: int, timeout: float, *, allow_private: bool,
                 ssl_context: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, family: Family = "any") -> None:
        self.host = host
        self.family = family
        self.port = port
        self.timeout = timeout
        self.allow_private = allow_private
        # An IP literal is judged once here; a name is resolved (cached) per probe.
        self.resolved = literal(host, allow_private=allow_private)
        if self.resolved is not None:
            self.resolved = self.resolved.only(family)
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname

    def exchange(self, loop: asyncio.AbstractEventLoop) -> Exchange:
        raise NotImplementedError

    async def __call__(self) -> ProbeResult:
        """Resolve (names only), connect once, and wait for the exchange's verdict.

        Returns a ProbeResult for every failure; only cancellation by the
        caller propagates.
        """
        loop = asyncio.get_running_loop()
        ex = self.exchange(loop)
        task = ex.task = asyncio.current_task(loop)
        timer = loop.call_at(ex.t0 + self.timeout, ex.expire)
        try:
            resolved = self.resolved
            if resolved is None:
                resolved = await RESOLVER.resolve(self.host, allow_private=self.allow_private)
                if self.family != "any":
                    resolved = resolved.only(self.family)
            if resolved.ip is None:
                ex.finish(resolved.outcome, resolved.reason)
            else:
                await loop.create_connection(ex, resolved.ip, self.port, ssl=self.ssl_context,
                                             server_hostname=self.server_hostname)
            ex.connecting = False
            return await ex.fut
        except asyncio.CancelledError:
            # Ours (the deadline) or the caller's? Only ours becomes a result.
            if not ex.expired or task.uncancel() > 0:  # type: ignore[union-attr]
                ex.finish(Outcome.ERROR, "cancelled")
                raise
            ex.finish(Outcome.TIMEOUT, "timeout")
            return ex.fut.result()
        except Exception as exc:  # noqa: BLE001 - a probe never raises
            ex.finish(*connect_reason(exc))
            return ex.fut.result()
        finally:
            timer.cancel()
            ex.task = None
