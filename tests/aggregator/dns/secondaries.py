"""Real secondaries (Knot, NSD, BIND) on loopback ports, each in a temporary directory.

Each server runs in the foreground in a session of its own, so stopping it
stops every process it forked (NSD forks its server children).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


def need(binary: str) -> str:
    """The binary's path; skip when it is missing outside CI, fail inside (CI=true)."""
    path = shutil.which(binary) or next(
        (p for d in ("/usr/sbin", "/sbin") if os.access(p := f"{d}/{binary}", os.X_OK)), None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is missing; .ci/run installs it")
        pytest.skip(f"{binary} is not installed (Debian: see .ci/run)")
    return path


def free_port() -> int:
    """A loopback port free for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no free port")


@dataclass
class Key:
    name: str
    algorithm: str
    secret: str


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _start(name: str, argv: list[str], port: int, directory: Path) -> Server:
    log = directory / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=directory,
                                start_new_session=True)
    return Server(name, port, proc, log)


def knot(directory: Path, zone: str, primary: int, port: int, key: Key | None = None) -> Server:
    binary = need("knotd")
    key_conf = key_ref = ""
    if key is not None:
        key_conf = (f"key:\n  - id: {key.name}\n    algorithm: {key.algorithm}\n"
                    f"    secret: {key.secret}\n")
        key_ref = f"    key: {key.name}\n"
    conf = directory / "knot.conf"
    conf.write_text(f"""\
server:
    rundir: "{directory}"
    listen: 127.0.0.1@{port}
log:
  - target: stderr
    any: info
{key_conf}database:
    storage: "{directory}"
control:
    listen: "{directory}/knot.sock"
remote:
  - id: primary
    address: 127.0.0.1@{primary}
{key_ref}acl:
  - id: from_primary
    address: 127.0.0.1
{key_ref}    action: notify
template:
  - id: default
    storage: "{directory}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: {zone}
    master: primary
    acl: from_primary
""")
    return _start("knotd", [binary, "-c", str(conf)], port, directory)


def nsd(directory: Path, zone: str, primary: int, port: int, key: Key | None = None) -> Server:
    binary = need("nsd")
    conf = directory / "nsd.conf"
    key_conf, key_ref = "", "NOKEY"
    if key is not None:
        key_conf = (f"key:\n    name: {key.name}\n    algorithm: {key.algorithm}\n"
                    f"    secret: \"{key.secret}\"\n")
        key_ref = key.name
    conf.write_text(f"""\
{key_conf}server:
    ip-address: 127.0.0.1
    port: {port}
    username: ""
    chroot: ""
    database: ""
    zonesdir: "{directory}"
    zonelistfile: "{directory}/zone.list"
    xfrdfile: "{directory}/xfrd.state"
    xfrdir: "{directory}"
    pidfile: "{directory}/nsd.pid"
    verbosity: 2
    server-count: 1
remote-control:
    control-enable: no
zone:
    name: {zone}
    request-xfr: 127.0.0.1@{primary} {key_ref}
    allow-notify: 127.0.0.1 {key_ref}
    max-retry-time: 5
    min-retry-time: 1
""")
    return _start("nsd", [binary, "-d", "-c", str(conf)], port, directory)


def bind(directory: Path, zone: str, primary: int, port: int, key: Key | None = None) -> Server:
    binary = need("named")
    conf = directory / "named.conf"
    key_conf = ""
    if key is not None:
        key_conf = (f'key "{key.name}" {{ algorithm {key.algorithm}; secret "{key.secret}"; }};\n'
                    f'server 127.0.0.1 {{ keys {{ "{key.name}"; }}; }};\n')
    conf.write_text(f"""\
{key_conf}options {{
    directory "{directory}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    managed-keys-directory "{directory}";
    recursion no;
    notify no;
    dnssec-validation no;
}};
controls {{ }};
zone "{zone}" {{
    type secondary;
    primaries {{ 127.0.0.1 port {primary}; }};
    file "{directory}/secondary.db";
    allow-notify {{ 127.0.0.1; }};
}};
""")
    return _start("named", [binary, "-g", "-c", str(conf)], port, directory)


def dig(port: int, name: str, rdtype: str = "A") -> list[str] | None:
    """``dig +short`` at 127.0.0.1:port; None when it got no answer at all."""
    r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(port),
                        "@127.0.0.1", name, rdtype], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        return None
    return sorted(r.stdout.split())


def wait_until(cond: Callable[[], bool], timeout: float, what: str,
               server: Server | None = None) -> float:
    """Poll cond; the seconds it took. Fails with the server's log when it never holds."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            log = server.output()[-4000:] if server else ""
            raise AssertionError(f"{what} not seen within {timeout}s\n{log}")
        if server is not None and server.proc.poll() is not None:
            raise AssertionError(f"{server.name} exited {server.proc.returncode}\n"
                                 f"{server.output()[-4000:]}")
        time.sleep(0.05)
    return time.monotonic() - start
