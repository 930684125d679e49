"""The HTTP side port every component serves with ``--metrics HOST:PORT`` (alias ``--http``).

Paths:

``/metrics``
    Prometheus text: the component's own metrics, ``process_*`` (CPU, memory,
    open files, start time) and ``healthplane_build_info{version}``.
``/healthz``
    200 while the process runs. It is answered on the component's event
    loop, so a loop that is stuck stops answering and a liveness probe sees it.
``/readyz``
    200 once the component serves real data, else 503; the body says why.
    What "ready" means is the component's own callback (see each component).

Anything else is 404, unless the component adds routes (the aggregator's
status page). The port is read-only and plaintext, like a Prometheus
exporter's: it reveals metric values, check ids and their health, never
keys or configuration files; bind it to a private address.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

from healthplane import __version__

# (ready, why): why is shown in the /readyz body either way.
Readiness = Callable[[], tuple[bool, str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_process_metrics(registry: CollectorRegistry) -> None:
    """process_* and healthplane_build_info in a component's own registry."""
    # Every counter's *_created twin would double the series for a value
    # process_start_time_seconds already gives.
    disable_created_metrics()
    ProcessCollector(registry=registry)
    Info("healthplane_build", "The healthplane version of this process.",
         registry=registry).info({"version": __version__})


class SidePort:
    """``/metrics``, ``/healthz``, ``/readyz`` and extra routes on the running event loop."""

    def __init__(self, registry: CollectorRegistry, ready: Readiness,
                 routes: Sequence[tuple[str, Handler]] = ()) -> None:
        """routes: (path, GET handler) pairs added beside the three standard paths."""
        add_process_metrics(registry)
        self.registry, self.ready = registry, ready
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        for path, handler in routes:
            app.router.add_get(path, handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Bind host:port (0 picks a port) and serve; returns the bound port.

        Raises OSError when the address cannot be bound.
        """
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            await self._runner.cleanup()
            raise
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        # Collectors read live state; running them on the loop keeps them
        # from racing with the hot paths that change it.
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ok, why = self.ready()
        return web.Response(status=200 if ok else 503,
                            text=("ready" if ok else "not ready") + (f": {why}\n" if why
                                                                      else "\n"))
