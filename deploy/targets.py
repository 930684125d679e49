"""Probe targets for the local demo, end-to-end tests and benchmarks.

Reads a checks.yaml and serves, on loopback, an endpoint for every ``http``,
``tcp`` and ``grpc`` check whose host is a loopback address:

- http: an aiohttp server answering ``200 ok`` on the check's port and path
  (many checks may share a port with different paths);
- tcp: a listener that accepts and closes;
- grpc: a real ``grpc.health.v1`` server, SERVING or NOT_SERVING;
- ``--hang ID``: accepts connections and never answers (every probe times out);
- ``--flap ID``: goes down for ``--down-seconds`` every ``--period`` seconds,
  flapping targets staggered across the period.

A target that is *down* fails its probe the way a dead endpoint does: an
http target answers 503 and closes the connection (so a kept-alive
connection cannot mask it) and its port stops listening once every target on
it is down; a tcp port stops listening; a grpc server reports NOT_SERVING.

A small HTTP control API lets tests kill and revive targets on demand::

    GET  /state          {"web-1": {"kind": "http", "up": true, ...}, ...}
    POST /down/ID        take target ID down (ID "*": every target)
    POST /up/ID          bring it back

A manual /down or /up pins the target: its flapping schedule stops.

    python -m healthplane.deploy.targets --checks checks.yaml --control 127.0.0.1:18080
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web
from grpc import aio as grpc_aio
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc
from healthplane.proto.config.addresses import parse_hostport
from healthplane.proto.config.yamlload import load_plain

from healthplane.runtime.clock import SystemClock
from healthplane.runtime.grid import GridLoop
from healthplane.runtime.loop import run_event_loop
from healthplane.runtime.parent import watch_parent

HANG_CLOSE_AFTER = 60.0   # a hung connection is dropped eventually so idle sockets stay bounded


@dataclass
class Target:
    """One served endpoint, named by the check id it answers for."""

    id: str
    kind: str                  # "http" | "tcp" | "grpc" | "hang"
    port: int
    path: str = "/"
    up: bool = True
    pinned: bool = False       # set by the control API: the schedule no longer moves it
    flap_task: asyncio.Task[None] | None = field(default=None, repr=False)


def read_targets(checks_path: Path, *, hang: set[str], skip: set[str]) -> list[Target]:
    """The targets for every loopback http/tcp/grpc check of a checks.yaml.

    Reads the raw YAML rather than the validated registry: the targets only
    need id, type, host, port and path, and must start even while a check
    elsewhere in the file is still being edited.
    """
    data = load_plain(checks_path.read_text()) or {}
    targets: list[Target] = []
    for entry in data.get("checks") or []:
        if not isinstance(entry, dict) or entry.get("id") in skip:
            continue
        kind, host, port = entry.get("type"), str(entry.get("host", "")), entry.get("port")
        if kind not in ("http", "tcp", "grpc") or not isinstance(port, int):
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                continue
        except ValueError:
            if host != "localhost":
                continue
        tid = str(entry["id"])
        targets.append(Target(tid, "hang" if tid in hang else kind, port,
                              str(entry.get("path", "/"))))
    return targets


class _Accept(asyncio.Protocol):
    """tcp target: the handshake is the whole answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Hang(asyncio.Protocol):
    """hang target: read and discard, never answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        asyncio.get_running_loop().call_later(HANG_CLOSE_AFTER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass


class Targets:
    """Every target of one process, with its listeners and control state."""

    def __init__(self, targets: list[Target], host: str = "127.0.0.1") -> None:
        self.host = host
        self.by_id = {t.id: t for t in targets}
        self.by_port: dict[int, list[Target]] = {}
        for t in targets:
            self.by_port.setdefault(t.port, []).append(t)
        self._http_paths = {(t.port, t.path): t for t in targets if t.kind == "http"}
        self._listeners: dict[int, asyncio.base_events.Server] = {}
        self._grpc: dict[int, tuple[grpc_aio.Server, grpc_health.aio.HealthServicer]] = {}

    async def start(self) -> None:
        for port, group in self.by_port.items():
            if group[0].kind == "grpc":
                await self._start_grpc(port)
            else:
                await self._listen(port)

    async def stop(self) -> None:
        for t in self.by_id.values():
            if t.flap_task is not None:
                t.flap_task.cancel()
        for port in list(self._listeners):
            self._unlisten(port)
        for server, _ in self._grpc.values():
            await server.stop(0)

    async def set_up(self, tid: str, up: bool) -> None:
        """Bring target tid up or down and open/close its port to match."""
        t = self.by_id[tid]
        t.up = up
        if t.kind == "grpc":
            _, servicer = self._grpc[t.port]
            status = (health_pb2.HealthCheckResponse.SERVING if up
                      else health_pb2.HealthCheckResponse.NOT_SERVING)
            await servicer.set("", status)
            return
        any_up = any(o.up for o in self.by_port[t.port])
        if any_up and t.port not in self._listeners:
            await self._listen(t.port)
        elif not any_up and t.port in self._listeners:
            self._unlisten(t.port)

    def flap(self, tid: str, down_s: float, period: float, offset: float) -> None:
        """Take tid down for down_s seconds every period, starting offset seconds in."""
        self.by_id[tid].flap_task = asyncio.create_task(self._flap(tid, down_s, period, offset))

    async def _flap(self, tid: str, down_s: float, period: float, offset: float) -> None:
        clock = SystemClock()

        async def down_then_up() -> None:
            if not self.by_id[tid].pinned:
                await self.set_up(tid, False)
            await clock.sleep_until(grid.due(grid.slot) + down_s)
            if not self.by_id[tid].pinned:
                await self.set_up(tid, True)

        # A fixed grid from the start time, so the pattern never drifts.
        grid = GridLoop(down_then_up, period, clock)
        await grid.run(start=clock.now() + offset)

    async def _listen(self, port: int) -> None:
        kind = self.by_port[port][0].kind
        loop = asyncio.get_running_loop()
        factory: object
        if kind == "http":
            factory = web.Server(self._http, loop=loop)
        elif kind == "hang":
            factory = _Hang
        else:
            factory = _Accept
        self._listeners[port] = await loop.create_server(
            factory, self.host, port, reuse_address=True)

    def _unlisten(self, port: int) -> None:
        server = self._listeners.pop(port)
        server.close()

    async def _http(self, request: web.BaseRequest) -> web.StreamResponse:
        port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
        t = self._http_paths.get((port, request.path))
        if t is None:
            return web.Response(status=404, text="no such target\n")
        if not t.up:
            return web.Response(status=503, text="down\n", headers={"Connection": "close"})
        return web.Response(text="ok\n")

    async def _start_grpc(self, port: int) -> None:
        server = grpc_aio.server()
        servicer = grpc_health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        if server.add_insecure_port(f"{self.host}:{port}") == 0:
            raise OSError(f"cannot listen on {self.host}:{port}")
        await server.start()
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        self._grpc[port] = (server, servicer)

    def state(self) -> dict[str, dict[str, object]]:
        return {t.id: {"kind": t.kind, "port": t.port, "path": t.path, "up": t.up,
                       "pinned": t.pinned} for t in self.by_id.values()}

    def control_app(self) -> web.Application:
        app = web.Application()

        async def state(_: web.Request) -> web.Response:
            return web.json_response(self.state())

        async def change(request: web.Request) -> web.Response:
            tid, up = request.match_info["id"], request.match_info["op"] == "up"
            ids = list(self.by_id) if tid == "*" else [tid]
            if any(i not in self.by_id for i in ids):
                return web.json_response({"error": f"no target {tid!r}"}, status=404)
            for i in ids:
                self.by_id[i].pinned = True
                await self.set_up(i, up)
            return web.json_response({i: self.by_id[i].up for i in ids})

        app.router.add_get("/state", state)
        app.router.add_post("/{op:up|down}/{id}", change)
        return app


async def serve(args: argparse.Namespace) -> int:
    hang, flapping = set(args.hang), list(dict.fromkeys(args.flap))
    targets = Targets(read_targets(Path(args.checks), hang=hang, skip=set(args.skip)))
    unknown = [i for i in flapping + list(hang) if i not in targets.by_id]
    if unknown:
        raise SystemExit(f"targets: no loopback http/tcp/grpc check named {unknown[0]!r} "
                         f"in {args.checks}")
    await targets.start()
    for n, tid in enumerate(flapping):
        # Stagger flapping targets across the period so they are not down together.
        targets.flap(tid, args.down_seconds, args.period,
                     args.first_down + n * args.period / len(flapping))
    runner = web.AppRunner(targets.control_app(), access_log=None)
    await runner.setup()
    host, port = parse_hostport(args.control)
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    print(f"targets: serving {len(targets.by_id)} targets; control on {args.control}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch_parent(loop)
    await stop.wait()
    await runner.cleanup()
    await targets.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m healthplane.deploy.targets",
                                description="Serve demo/test probe targets for a checks.yaml.")
    p.add_argument("--checks", required=True, help="checks.yaml whose loopback checks to serve")
    p.add_argument("--control", default="127.0.0.1:18080", help="HOST:PORT of the control API")
    p.add_argument("--flap", action="append", default=[], metavar="ID",
                   help="take this target down on a schedule (repeatable)")
    p.add_argument("--hang", action="append", default=[], metavar="ID",
                   help="accept connections for this target and never answer (repeatable)")
    p.add_argument("--skip", action="append", default=[], metavar="ID",
                   help="do not serve this check's endpoint at all (repeatable)")
    p.add_argument("--down-seconds", type=float, default=20.0, help="downtime per period")
    p.add_argument("--period", type=float, default=60.0, help="flapping period in seconds")
    p.add_argument("--first-down", type=float, default=15.0,
                   help="seconds before the first flapping target first goes down")
    args = p.parse_args(argv)
    if not 0 < args.down_seconds < args.period:
        print("targets: --down-seconds must be > 0 and < --period", file=sys.stderr)
        return 2
    try:
        parse_hostport(args.control)
        # uvloop: a few thousand probes a second from a whole fleet would
        # otherwise keep this one process busy enough to starve its control API.
        run_event_loop(serve(args))
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"targets: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
