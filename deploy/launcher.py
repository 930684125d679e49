"""Start a whole healthplane fleet on one machine, as separate processes.

From a checks.yaml, fleet.yaml and (optionally) zone.yaml the launcher
starts one ``healthplane checker`` per checker id of the fleet, one
``healthplane aggregator`` per aggregator address, the ``healthplane dns``
front and, if asked, the probe targets of :mod:`deploy.targets`. It waits
until each is ready, writes every process's output to ``RUN_DIR/NAME.log``
and, on every way out (normal exit, exception, Ctrl-C, SIGTERM), stops
every process it started: SIGTERM to the process group it created, then
SIGKILL after a grace period, so grandchildren die too. Each child also
watches a lifeline pipe (:mod:`healthplane.runtime.parent`), so a launcher
that dies without cleaning up (SIGKILL) still takes its children with it.

With ``tls=True`` (the default) it first writes a development CA and a
certificate per component into ``RUN_DIR/certs`` (see :mod:`healthplane.certs`)
and runs every gRPC channel with mutual TLS; :meth:`Fleet.channel` gives a
client channel with the ``query`` certificate.

Used by ``healthplane demo``, the end-to-end tests and the benchmarks::

    with Fleet(checks, fleet, zone, targets=TargetsOptions()) as f:
        f.kill_checker("use1-a")       # SIGKILL by default
        f.kill_aggregator(0)
        f.target_down("web-1")
        print(f.dns_address)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from healthplane.deploy.ports import (
    dns_answers,
    free_port,
    free_ports,
    grpc_serving,
    port_is_free,
    tcp_open,
)
from healthplane.deploy.processes import (
    RUN_DIR_ENV,
    Proc,
    interrupt_on_sigterm,
    leftover_pids,
    signal_and_reap,
    spawn,
    stop_all,
)
from healthplane.proto.config.addresses import parse_hostport
from healthplane.proto.config.loader import load_config
from healthplane.proto.config.model import Fleet as FleetConfig

from healthplane.runtime.listen import parse_listen
from healthplane.runtime.parent import parent_pipe
from healthplane.runtime.tls import TlsFiles, secure_channel

__all__ = [
    "RUN_DIR_ENV", "Fleet", "LaunchError", "Proc", "TargetsOptions", "free_port", "free_ports",
    "grpc_serving", "interrupt_on_sigterm", "leftover_pids", "port_is_free", "stop_all",
]


class LaunchError(RuntimeError):
    """A process of the fleet failed to start or to become ready (one line, names the log)."""


def healthplane_argv(command: str, *args: str) -> list[str]:
    """argv for a healthplane subcommand run by this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "healthplane", command, *args]


@dataclass
class TargetsOptions:
    """How to run deploy.targets alongside the fleet (targets of checks.yaml)."""

    flap: Sequence[str] = ()
    hang: Sequence[str] = ()
    skip: Sequence[str] = ()
    down_seconds: float = 20.0
    period: float = 60.0
    first_down: float = 15.0
    control: str | None = None          # HOST:PORT; None: a free port


class Fleet:
    """A fleet of healthplane processes on loopback; a context manager."""

    def __init__(
        self,
        checks: str | Path,
        fleet: str | Path,
        zone: str | Path | None = None,
        *,
        run_dir: str | Path | None = None,
        dns_listen: str | None = "127.0.0.1:0",
        targets: TargetsOptions | None = None,
        checker_metrics: bool = True,
        ready_timeout: float = 60.0,
        grace: float = 5.0,
        log_args: Sequence[str] = (),
        tls: bool = True,
    ) -> None:
        """dns_listen: HOST:PORT for the DNS front (port 0: a free one; None: no DNS
        front, or none when zone is None). targets: also run deploy.targets.
        log_args: logging flags (--log-level, --log-format) for every
        healthplane process started.

        Raises ConfigError (one line per problem) before starting anything when
        the files do not load."""
        self.checks, self.fleet_path = Path(checks), Path(fleet)
        self.zone = Path(zone) if zone is not None else None
        self.run_dir = Path(run_dir) if run_dir else Path(
            tempfile.mkdtemp(prefix="healthplane-run-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Taste before serving: a bad file is one clear ConfigError here, not
        # a dozen processes each dying with the same complaint.
        self.registry, fleet_config, self.zone_config = load_config(
            self.checks, self.fleet_path, self.zone)
        assert fleet_config is not None
        self.fleet_config: FleetConfig = fleet_config
        self.checker_ids: list[str] = list(fleet_config.checker_ids)
        self.region_of = {c: r for r, ids in fleet_config.regions.items() for c in ids}
        self.aggregator_addresses: list[str] = list(fleet_config.aggregators)
        self.report_interval = fleet_config.report_interval
        self.tick = fleet_config.tick
        # Ports the configs promise to someone: never hand them out again.
        self._taken: set[int] = {c.port for c in self.registry.checks if c.port}
        for address in (*fleet_config.aggregators, *fleet_config.canaries):
            self._taken.add(parse_hostport(address)[1])
        self.dns_address: tuple[str, int] | None = None
        if self.zone is not None and dns_listen is not None:
            host, port = parse_listen(dns_listen)
            self.dns_address = (host, port or self._free_port(host))
        self.targets_options = targets
        self.targets_control: str | None = None
        if targets is not None:
            self.targets_control = targets.control or f"127.0.0.1:{self._free_port()}"
            self._taken.add(parse_hostport(self.targets_control)[1])
        self.checker_metrics = checker_metrics
        self.ready_timeout, self.grace = ready_timeout, grace
        self.log_args = list(log_args)
        self.checkers: dict[str, Proc] = {}
        self.checker_metrics_ports: dict[str, int] = {}
        # HTTP side ports (/metrics, /healthz, /readyz; the aggregators' status page).
        self.aggregator_http_ports: list[int] = []
        self.dns_http_port: int | None = None
        self.aggregators: list[Proc] = []
        self.dns: Proc | None = None
        self.targets: Proc | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._started: list[Proc] = []      # every process ever started, for stop()
        self._atexit = False
        self._token = uuid.uuid4().hex
        # The lifeline: children watch the read end; when this process ends in
        # any way the kernel closes the write end and they stop themselves.
        self._lifeline: tuple[int, int] | None = None
        self.tls_dir: Path | None = None
        if tls:
            from healthplane.certs import write_fleet_certs
            self.tls_dir = self.run_dir / "certs"
            write_fleet_certs(self.tls_dir, self.checker_ids, self.aggregator_addresses)

    # -- TLS -----------------------------------------------------------------

    def tls_flags(self, name: str) -> list[str]:
        """--tls-* for the component whose certificate is RUN_DIR/certs/NAME.pem."""
        if self.tls_dir is None:
            return []
        d = self.tls_dir
        return ["--tls-cert", str(d / f"{name}.pem"), "--tls-key", str(d / f"{name}-key.pem"),
                "--tls-ca", str(d / "ca.pem")]

    def client_tls(self, name: str = "query") -> TlsFiles | None:
        """The TLS files of a client certificate of this fleet; None without TLS."""
        if self.tls_dir is None:
            return None
        d = self.tls_dir
        return TlsFiles(str(d / f"{name}.pem"), str(d / f"{name}-key.pem"), str(d / "ca.pem"))

    def channel(self, address: str, name: str = "query") -> grpc.Channel:
        """A blocking gRPC channel to address, with mutual TLS when the fleet has it."""
        return secure_channel(address, self.client_tls(name), aio=False)

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start every process and wait until each is ready; on any failure stop all."""
        try:
            if self.targets_options is not None:
                self._start_targets()
            for i in range(len(self.aggregator_addresses)):
                self.start_aggregator(i, wait=False)
            for i in range(len(self.aggregator_addresses)):
                self._wait_aggregator(i)
            for cid in self.checker_ids:
                self.start_checker(cid, wait=False)
            if self.dns_address is not None:
                self._start_dns()
            for cid in self.checker_ids:
                self._wait_checker(cid)
        except BaseException:
            self.stop()
            raise

    def processes(self) -> list[Proc]:
        procs: list[Proc] = [*self.checkers.values(), *self.aggregators]
        procs += [p for p in (self.dns, self.targets) if p is not None]
        return procs

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes() if p.pid is not None]

    def stop(self) -> None:
        """Stop every process this fleet started; safe to call twice and from atexit."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        # A second Ctrl-C (or a SIGTERM, or the terminal closing) must not
        # interrupt the cleanup half way.
        old: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            old = {sig: signal.signal(sig, signal.SIG_IGN)
                   for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            stop_all(self._started, self.grace)
            # A Ctrl-C between fork and bookkeeping leaves a child off the list;
            # its environment still names this run, so find it that way.
            for pid in leftover_pids(self.run_dir, self._token):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
            atexit.unregister(self.stop)
            if self._lifeline is not None:
                for fd in self._lifeline:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._lifeline = None

    # -- individual processes ------------------------------------------------

    def start_checker(self, checker_id: str, *, wait: bool = True) -> Proc:
        if checker_id not in self.region_of:
            raise LaunchError(f"no checker {checker_id!r} in {self.fleet_path}")
        args = ["--checks", str(self.checks), "--fleet", str(self.fleet_path), "--id", checker_id]
        if self.checker_metrics:
            port = self.checker_metrics_ports.get(checker_id) or self._free_port()
            self.checker_metrics_ports[checker_id] = port
            args += ["--metrics", f"127.0.0.1:{port}"]
        args += self.tls_flags(f"checker-{checker_id}")
        proc = self._spawn(f"checker-{checker_id}",
                           healthplane_argv("checker", *args, *self.log_args))
        self.checkers[checker_id] = proc
        if wait:
            self._wait_checker(checker_id)
        return proc

    def start_aggregator(self, index: int, *, wait: bool = True) -> Proc:
        address = self.aggregator_addresses[index]
        while len(self.aggregator_http_ports) <= index:
            self.aggregator_http_ports.append(self._free_port())
        # Each aggregator keeps its snapshot file in the run folder, so a
        # restarted one reads back its last states (aggregator.warmstart).
        args = ["--checks", str(self.checks), "--fleet", str(self.fleet_path),
                "--listen", address, *self.tls_flags("aggregator"),
                "--http", f"127.0.0.1:{self.aggregator_http_ports[index]}",
                "--snapshot-file", str(self.run_dir / f"aggregator-{index}.msgpack")]
        proc = self._spawn(f"aggregator-{index}",
                           healthplane_argv("aggregator", *args, *self.log_args))
        if index < len(self.aggregators):
            self.aggregators[index] = proc
        else:
            self.aggregators.append(proc)
        if wait:
            self._wait_aggregator(index)
        return proc

    def start_dns(self) -> Proc:
        """(Re)start the DNS front and wait until it answers (SERVFAIL counts)."""
        self._start_dns()
        assert self.dns is not None
        return self.dns

    def kill_checker(self, checker_id: str, sig: int = signal.SIGKILL) -> None:
        signal_and_reap(self.checkers[checker_id], sig, self.grace)

    def kill_aggregator(self, index: int, sig: int = signal.SIGKILL) -> None:
        signal_and_reap(self.aggregators[index], sig, self.grace)

    def kill_dns(self, sig: int = signal.SIGKILL) -> None:
        if self.dns is not None:
            signal_and_reap(self.dns, sig, self.grace)

    # -- targets control -----------------------------------------------------

    def target_down(self, target_id: str) -> None:
        """Take a target down ("*": every target) through the targets control API."""
        self._control("down", target_id)

    def target_up(self, target_id: str) -> None:
        self._control("up", target_id)

    def target_state(self) -> dict[str, dict[str, object]]:
        with urllib.request.urlopen(f"http://{self._need_control()}/state", timeout=5) as r:
            return dict(json.load(r))

    def _control(self, op: str, target_id: str) -> None:
        url = f"http://{self._need_control()}/{op}/{target_id}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):
            pass

    def _need_control(self) -> str:
        if self.targets_control is None:
            raise LaunchError("this fleet runs no targets")
        return self.targets_control

    # -- internals -----------------------------------------------------------

    def _start_targets(self) -> None:
        o = self.targets_options
        assert o is not None and self.targets_control is not None
        args = ["--checks", str(self.checks), "--control", self.targets_control,
                "--down-seconds", str(o.down_seconds), "--period", str(o.period),
                "--first-down", str(o.first_down)]
        for flag, ids in (("--flap", o.flap), ("--hang", o.hang), ("--skip", o.skip)):
            for tid in ids:
                args += [flag, tid]
        self.targets = self._spawn(
            "targets", [sys.executable, "-m", "healthplane.deploy.targets", *args])
        host, port = parse_hostport(self.targets_control)
        self._wait(self.targets, lambda: tcp_open(host, port), "control port open")

    def _start_dns(self) -> None:
        assert self.zone is not None and self.dns_address is not None
        host, port = self.dns_address
        # --tick lets the front notice at once an aggregator that falls behind.
        args = ["--zone", str(self.zone), "--listen", f"{host}:{port}",
                "--tick", str(self.tick)]
        for a in self.aggregator_addresses:
            args += ["--aggregator", a]
        args += self.tls_flags("dns")
        if self.dns_http_port is None:
            self.dns_http_port = self._free_port()
        args += ["--http", f"127.0.0.1:{self.dns_http_port}"]
        self.dns = self._spawn("dns", healthplane_argv("dns", *args, *self.log_args))
        assert self.zone_config is not None
        apex = self.zone_config.zone
        self._wait(self.dns, lambda: dns_answers(host, port, apex), "answering DNS")

    def _wait_aggregator(self, index: int) -> None:
        address = self.aggregator_addresses[index]
        tls = self.client_tls()
        creds = tls.channel_credentials() if tls is not None else None
        self._wait(self.aggregators[index], lambda: grpc_serving(address, credentials=creds),
                   "gRPC health SERVING")

    def _wait_checker(self, checker_id: str) -> None:
        proc = self.checkers[checker_id]
        port = self.checker_metrics_ports.get(checker_id)
        if port is None:
            self._wait(proc, lambda: True, "started")
        else:
            self._wait(proc, lambda: tcp_open("127.0.0.1", port), "metrics port open")

    def _free_port(self, host: str = "127.0.0.1") -> int:
        port = free_port(host, exclude=self._taken)
        self._taken.add(port)
        return port

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        if self._stopped:
            raise LaunchError("fleet already stopped")
        if not self._atexit:
            # The last line of defence when a caller forgets stop(): nothing stays behind.
            atexit.register(self.stop)
            self._atexit = True
        if self._lifeline is None:
            self._lifeline = parent_pipe()
        proc = spawn(name, argv, self.run_dir, self._token, parent_fd=self._lifeline[0])
        self._started.append(proc)
        return proc

    def _wait(self, proc: Proc, ready: object, what: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if not proc.alive():
                raise LaunchError(f"{proc.name} exited during start "
                                  f"(see {proc.log}): {proc.tail()}")
            if ready():  # type: ignore[operator]
                return
            if time.monotonic() > deadline:
                raise LaunchError(f"{proc.name} not {what} after {self.ready_timeout:.0f} s "
                                  f"(see {proc.log}): {proc.tail()}")
            time.sleep(0.1)


