"""Noticing a gRPC server that stopped without being asked.

grpcio's aio server loop dies on some malformed requests, and then no RPC
is served again while the process looks alive. The aggregator watches for
that and exits, so that a supervisor restarts it.
"""

from __future__ import annotations

import asyncio

import grpc

from healthplane.runtime.grpclog import escape

# How often the server's liveness is polled: the longest a dead server goes unnoticed.
WATCH_PERIOD = 0.5


async def server_stopped(server: grpc.aio.Server, period: float = WATCH_PERIOD) -> str:
    """Wait until server terminates; returns why, in one line.

    Polled with a timeout: when grpc's server loop crashes while calls are
    open, its own shutdown never completes, but
    ``wait_for_termination(timeout)`` raises the crash at the timeout.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            t0 = loop.time()
            await server.wait_for_termination(timeout=period)
            # Its return value has meant both things across grpcio releases;
            # returning before the timeout means: terminated.
            if loop.time() - t0 < period * 0.9:
                return "the gRPC server stopped"
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - whatever killed grpc's server loop
            return f"the gRPC server loop died: {type(exc).__name__}: {escape(str(exc))}"
