"""The compiled UDP loop: the fast path's bytes from C, everything else handed back.

Queries go over a real loopback socket to :func:`_fastdns.serve`; what it
hands back is answered as the front does (:meth:`DnsFront.handle`). The
responses must be, as a multiset, the dnspython path's for the same queries
(draws are fixed, so order does not matter), and the stats must agree.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

import pytest
from healthplane.aggregator.dns import udp
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.server import DnsFront
from healthplane.proto import codec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aggregator.dns.test_fastpath import STATES, ZONES, common, mutate

NATIVE = udp.NATIVE
needs_native = pytest.mark.skipif(NATIVE is None, reason="_fastdns not built or forced off")
ROOT = Path(__file__).resolve().parents[3]


def test_the_extension_is_built_in_ci() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only CI insists on the compiled path")
    importlib.import_module("healthplane.aggregator.dns._fastdns")


class Loop:
    """A front served by the compiled loop on a loopback socket, and its reference."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        fronts = [DnsFront(build_answers(ZONES["plain"], lambda c: STATES.get(c, codec.UNKNOWN),
                                         serial=3, rng=lambda: 0.37), fast_path=fast)
                  for fast in (True, False)]
        self.front, self.reference = fronts
        self.server = socket.socket(family, socket.SOCK_DGRAM)
        self.server.bind((host, 0))
        self.server.setblocking(False)
        self.client = socket.socket(family, socket.SOCK_DGRAM)
        self.client.bind((host, 0))
        self.client.settimeout(3)
        for s in (self.server, self.client):   # a whole batch queued, with room to spare
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def close(self) -> None:
        self.server.close()
        self.client.close()

    def exchange(self, wires: list[bytes]) -> int:
        """Send wires at once, serve them, check the answers; returns how many C answered."""
        assert NATIVE is not None and self.front.fast_answers is not None
        for w in wires:
            self.client.sendto(w, self.server.getsockname())
        expected = [r for w in wires if (r := self.reference.handle(w)) is not None]
        fast = self.front.fast_answers
        done = in_c = 0
        deadline = time.monotonic() + 5
        while done < len(wires) and time.monotonic() < deadline:
            # Within a call only C counts: one rcode per datagram it answered.
            before = rcodes(self.front.stats)
            back = NATIVE.serve(self.server.fileno(), fast.entries, fast.rng,
                                self.front.stats, 256)
            answered = rcodes(self.front.stats) - before
            in_c += answered
            done += answered + len(back)
            for data, addr in back:
                out = self.front.handle(data, peer=addr[0])
                if out is not None:
                    self.server.sendto(out, addr)
        got = [self.client.recv(65535) for _ in expected]
        self.client.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.client.recv(65535)
        self.client.settimeout(3)
        assert Counter(got) == Counter(expected)
        assert self.front.stats == self.reference.stats
        return in_c


def rcodes(stats: Counter[str]) -> int:
    return sum(v for k, v in stats.items() if k.isupper())


LOOP: Loop | None = None


def loop() -> Loop:
    global LOOP
    if LOOP is None:
        LOOP = Loop()
    return LOOP


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(common(), min_size=1, max_size=40))
def test_common_queries_are_answered_in_c_as_dnspython_would(cases: list) -> None:
    wires = [wire for _pair, wire, _tcp in cases]
    lp = loop()
    lp.exchange(wires)                        # the first sight builds the entries
    assert lp.exchange(wires) == len(wires)


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(common(), st.integers(0, 5), st.integers(0, 400),
                          st.integers(0, 255), st.binary(min_size=1, max_size=12)),
                min_size=1, max_size=40))
def test_mutated_queries_agree(cases: list) -> None:
    wires = [mutate(wire, kind, pos, value, tail)
             for (_pair, wire, _tcp), kind, pos, value, tail in cases]
    lp = loop()
    lp.exchange(wires)
    lp.exchange(wires)


@needs_native
def test_ipv6_clients_are_answered() -> None:
    try:
        lp = Loop(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        from tests.aggregator.dns.test_fastpath import WWW, A, query
        wires = [query(i, 0x0100, WWW, A) for i in range(10)]
        lp.exchange(wires)
        assert lp.exchange(wires) == len(wires)
    finally:
        lp.close()


ASAN_WORKLOAD = r"""
import asyncio, importlib.util, random, socket, sys
spec = importlib.util.spec_from_file_location("healthplane.aggregator.dns._fastdns", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
sys.modules["healthplane.aggregator.dns._fastdns"] = mod
from healthplane.aggregator.dns import udp
assert udp.NATIVE is mod
from healthplane.aggregator.dns.build import build_answers
from healthplane.aggregator.dns.server import DnsFront
from healthplane.proto import codec
from tests.aggregator.dns.test_fastpath import ZONES, A, WWW, query

async def main():
    front = DnsFront(build_answers(ZONES["plain"], lambda c: codec.UNKNOWN, serial=1))
    port = await front.start("127.0.0.1", 0)
    rng = random.Random(5)
    good = [query(i, 0x0100, WWW, A, opt=(rng.randrange(65536), 0, 0, 0, b"")) for i in range(50)]
    good += [query(7, 0x0100, b"\x01w\x07example\x04test\x00", t) for t in (1, 28, 6, 2, 16)]
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    for round in range(60):
        for _ in range(64):
            w = rng.choice(good)
            kind = rng.randrange(4)
            if kind == 1:
                w = w[:rng.randrange(len(w) + 1)]
            elif kind == 2:
                p = rng.randrange(len(w))
                w = w[:p] + bytes([rng.randrange(256)]) + w[p + 1:]
            elif kind == 3:
                w = bytes(rng.randrange(256) for _ in range(rng.randrange(600)))
            if w:
                client.sendto(w, ("127.0.0.1", port))
        client.sendto(b"\x00" * 5000, ("127.0.0.1", port))
        await asyncio.sleep(0.005)
        try:
            while client.recv(65535):
                pass
        except BlockingIOError:
            pass
    await front.stop()
    assert front.stats["error"] == 0, front.stats
    print("answered", sum(front.stats.values()))

asyncio.run(main())
"""


@needs_native
def test_under_address_sanitizer(tmp_path: Path) -> None:
    """The C loop compiled with -fsanitize=address serves mixed and broken input."""
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not libasan or not Path(libasan).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("gcc's libasan is not installed (.ci/run installs libasan8)")
        pytest.skip("gcc's libasan is not installed")
    so = tmp_path / "_fastdns.so"
    build = subprocess.run(
        ["gcc", "-shared", "-fPIC", "-g", "-O1", "-fsanitize=address",
         "-fno-omit-frame-pointer", "-std=c11", "-Wall", "-Wextra", "-Werror",
         f"-I{sysconfig.get_paths()['include']}", str(ROOT / "aggregator/dns/_fastdns.c"),
         "-o", str(so)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0",
           "HEALTHPLANE_PURE_PYTHON": "0", "HEALTHPLANE_DNS_FAST_PATH": "1"}
    run = subprocess.run([sys.executable, "-c", ASAN_WORKLOAD, str(so)], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=120)
    assert "AddressSanitizer" not in run.stderr, run.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "answered" in run.stdout
