"""The compiled probe engine under AddressSanitizer, against hostile loopback servers.

A separate copy of the extension is built here with ``-fsanitize=address``
and loaded in a child Python with libasan preloaded and ``PYTHONMALLOC=malloc``
(so the engine's PyMem allocations are ASan's, not pymalloc's arenas). The
child probes real servers that answer well, flood endless headers, send
garbage, reset, trickle a byte at a time, stream endless chunks or never
answer; restarts probes still running, cancels some, feeds the parser
random bytes, and checks every probe got exactly one verdict and no file
descriptor was left open. Any ASan report fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["module", "engine", "conn", "llhttp/llhttp", "llhttp/api", "llhttp/http"]
pytestmark = pytest.mark.timeout(300)

CHILD = r'''
import asyncio, os, random, select, socket, struct, threading, time
import numpy as np
import _engine

RESET = struct.pack("ii", 1, 0)

async def ok(r, w):
    await r.readuntil(b"\r\n\r\n")
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello needle")

async def endless_headers(r, w):
    w.write(b"HTTP/1.1 200 OK\r\n")
    while True:
        w.write(b"X-Flood: " + b"a" * 1000 + b"\r\n")
        await w.drain()

async def garbage(r, w):
    w.write(random.Random(1).randbytes(70000))

async def reset(r, w):
    w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    w.transport.abort()

async def partial_then_reset(r, w):
    w.write(b"HTTP/1.1 200 OK\r\nContent-Le")
    await w.drain()
    await reset(r, w)

async def slowloris(r, w):
    for b in b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nneedle":
        w.write(bytes([b]))
        await w.drain()
        await asyncio.sleep(0.01)

async def endless_chunks(r, w):
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        w.write(b"1\r\na\r\n" * 200)
        await w.drain()

async def huge_chunk(r, w):
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\n")

async def silent(r, w):
    await asyncio.sleep(30)

BEHAVIOURS = [ok, endless_headers, garbage, reset, partial_then_reset, slowloris,
              endless_chunks, huge_chunk, silent]
ports = []
ready = threading.Event()

def serve():
    loop = asyncio.new_event_loop()
    async def main():
        for b in BEHAVIOURS:
            async def handle(r, w, b=b):
                try:
                    await b(r, w)
                    await w.drain()
                except Exception:
                    pass
                finally:
                    w.transport.abort()
            srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
            ports.append(srv.sockets[0].getsockname()[1])
        ready.set()
        await asyncio.sleep(3600)
    loop.run_until_complete(main())

threading.Thread(target=serve, daemon=True).start()
ready.wait(10)
closed = socket.socket(); closed.bind(("127.0.0.1", 0)); ports.append(closed.getsockname()[1])

fds_before = len(os.listdir("/proc/self/fd"))
table = bytearray(1000); table[200:400] = b"\x01" * 200; table = bytes(table)
request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
e = _engine.Engine()
ids = []
for port in ports:
    for copy in range(4):
        ids.append(e.add("127.0.0.1", port, 0.5, _engine.HTTP, request, None, table))
        ids.append(e.add("127.0.0.1", port, 0.5, _engine.HTTP, request, b"needle", table))
        ids.append(e.add("127.0.0.1", port, 0.5, _engine.TALK, b"PING\r\n", b"+PONG", None))
        ids.append(e.add("127.0.0.1", port, 0.5, _engine.CONNECT, None, None, None))
# Targets that share one spec, each with its own Host value spliced in per probe.
shared = e.spec(0.5, _engine.HTTP, request.replace(b"Host: x", b"Host: "), None, table,
                request.index(b"x\r\n"))
for port in ports:
    for host in (b"a.example", b"", b"h" * 300):
        ids.append(e.target("127.0.0.1", port, shared, e.host(host) if host else 0))
try:
    e.target("127.0.0.1", ports[0], shared, 10**6)
except IndexError:
    pass
else:
    raise SystemExit("a host id never added was taken")
ids.append(e.add("::1", ports[0], 0.5, _engine.CONNECT, None, None, None))
out = (np.empty(64, np.int64), np.empty(64, np.int8), np.empty(64, np.int32),
       np.empty(64, np.float64))
seen = {}
def drain():
    while (n := e.drain(*out)):
        for i in range(n):
            seen[int(out[0][i])] = seen.get(int(out[0][i]), 0) + 1

started = 0
for round in range(3):
    batch = np.asarray(ids, dtype=np.int64)
    e.start(batch)
    started += batch.size
    if round == 1:
        e.start(batch[:10])          # still running: those end as timeouts
        started += 10
        running = e.in_flight
        for i in ids[10:20]:
            e.cancel(i)              # dropped if still running, no result
        started -= running - e.in_flight
    deadline = time.monotonic() + 10
    while e.in_flight and time.monotonic() < deadline:
        select.select([e.fileno()], [], [], 0.05)
        e.poll()
    drain()
    assert e.in_flight == 0, e.in_flight
total = sum(seen.values())
assert total == started, (total, started)

# Specs added while probes run (a lone probe's, beside a batch) must not
# move the specs running readers point at.
slow = e.add("127.0.0.1", ports[BEHAVIOURS.index(slowloris)], 2.0, _engine.HTTP, request,
             b"needle", table)
e.start(slow)
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:
    select.select([e.fileno()], [], [], 0.02)
    e.poll()
for _ in range(300):
    e.add("127.0.0.1", ports[0], 0.5, _engine.HTTP, request, b"needle", table)
deadline = time.monotonic() + 5
while e.in_flight and time.monotonic() < deadline:
    select.select([e.fileno()], [], [], 0.05)
    e.poll()
drain()

rng = random.Random(7)
for _ in range(3000):
    data = rng.randbytes(rng.randint(0, 400))
    if rng.random() < 0.5:
        data = b"HTTP/1.1 200 OK\r\n" + data
    cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 3)))
    chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    _engine.judge_http(chunks, table, rng.choice([None, b"needle", b"a"]), rng.random() < 0.5)
    _engine.judge_tcp(chunks, b"PONG", rng.random() < 0.5)
e.stop()
del e
closed.close()
assert len(os.listdir("/proc/self/fd")) <= fds_before, "a file descriptor leaked"
print("asan child ok", total)
'''


def _libasan() -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    path = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def test_engine_under_address_sanitizer(tmp_path: Path) -> None:
    libasan = _libasan()
    if libasan is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("gcc with libasan is needed for the sanitizer test")
        pytest.skip("gcc with libasan is not installed")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    so = tmp_path / f"_engine{suffix}"
    src = ROOT / "checker" / "engine"
    build = subprocess.run(
        ["gcc", "-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1", "-std=c11",
         "-shared", "-fPIC", f"-I{src}", f"-I{sysconfig.get_paths()['include']}",
         *(str(src / f"{name}.c") for name in SOURCES), "-o", str(so)],
        capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr[-2000:]
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, LD_PRELOAD=libasan, PYTHONMALLOC="malloc", PYTHONPATH=str(tmp_path),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99")
    child = subprocess.run([sys.executable, str(tmp_path / "child.py")], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=240)
    assert "AddressSanitizer" not in child.stderr, child.stderr[-4000:]
    assert child.returncode == 0, child.stderr[-4000:]
    assert "asan child ok" in child.stdout
