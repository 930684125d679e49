"""A listener that accepts TCP connections and never answers.

The benchmark's "timing out" endpoints: every probe connects, sends its
request and then waits for an answer that never comes until its timeout.
The connection is held until the prober drops it. (A listening socket with
a full accept queue would time out too, but at connect time, like a
black-holed address; this one exercises the longer path where the
connection is open and the answer is missing.) Runs as its own process so
its CPU is never counted as the checker's.

    python bench/blackhole.py PORT [PORT ...]
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sys


class _Silent(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass            # read and drop, so the socket buffer never fills


async def _serve(ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(_Silent, "127.0.0.1", port, backlog=4096)
               for port in ports]
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    print("ready", flush=True)
    await stop
    for server in servers:
        server.close()


def _raise_open_files() -> None:
    """Hold every connection: with 1 s timeouts at 2,500 probes/s that is ~2,500
    sockets, past the 1,024 soft limit many shells start with. Past the limit
    accepts fail and connections are dropped, and the checker would measure
    refusals instead of timeouts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    ports = [int(p) for p in argv]
    _raise_open_files()
    try:
        import uvloop
        uvloop.run(_serve(ports))
    except ImportError:
        asyncio.run(_serve(ports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
