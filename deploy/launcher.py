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

The pieces: component_argv (each process's command line), readiness
(waiting for a started process), process_group (starting and stopping
them all), fleet_tls (certificates and flags),
targets_control (the probe targets process and its control API), and
processes and ports below them.

Used by ``healthplane demo``, the end-to-end tests and the benchmarks::

    with Fleet(checks, fleet, zone, targets=TargetsOptions()) as f:
        f.kill_checker("use1-a")       # SIGKILL by default
        f.kill_aggregator(0)
        f.target_down("web-1")
        print(f.dns_address)
"""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from healthplane.deploy.component_argv import (
    aggregator_args,
    checker_args,
    dns_args,
    healthplane_argv,
)
from healthplane.deploy.fleet_tls import FleetCerts
from healthplane.deploy.ports import (
    PortBook,
    dns_answers,
    free_port,
    free_ports,
    grpc_serving,
    port_is_free,
    tcp_open,
)
from healthplane.deploy.process_group import ProcessGroup
from healthplane.deploy.processes import (
    RUN_DIR_ENV,
    Proc,
    interrupt_on_sigterm,
    leftover_pids,
    signal_and_reap,
    stop_all,
)
from healthplane.deploy.readiness import LaunchError, wait_ready
from healthplane.deploy.targets_control import TargetsControl, TargetsOptions, targets_argv
from healthplane.proto.config.addresses import parse_hostport
from healthplane.proto.config.loader import load_config
from healthplane.proto.config.model import Fleet as FleetConfig

from healthplane.runtime.listen import parse_listen
from healthplane.runtime.tls import TlsFiles, secure_channel

__all__ = [
    "RUN_DIR_ENV", "Fleet", "LaunchError", "Proc", "TargetsOptions", "free_port", "free_ports",
    "grpc_serving", "healthplane_argv", "interrupt_on_sigterm", "leftover_pids", "port_is_free",
    "stop_all",
]


class Fleet(TargetsControl):
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
        self._ports = PortBook([c.port for c in self.registry.checks if c.port] + [
            parse_hostport(a)[1] for a in (*fleet_config.aggregators, *fleet_config.canaries)])
        self.dns_address: tuple[str, int] | None = None
        if self.zone is not None and dns_listen is not None:
            host, port = parse_listen(dns_listen)
            self.dns_address = (host, port or self._ports.take(host))
        self.targets_options = targets
        self.targets_control: str | None = None
        if targets is not None:
            self.targets_control = targets.control or f"127.0.0.1:{self._ports.take()}"
            self._ports.taken.add(parse_hostport(self.targets_control)[1])
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
        self._group = ProcessGroup(self.run_dir, grace)
        self.certs: FleetCerts | None = None
        self.tls_dir: Path | None = None
        if tls:
            self.tls_dir = self.run_dir / "certs"
            self.certs = FleetCerts.write(self.tls_dir, self.checker_ids,
                                          self.aggregator_addresses)

    # -- TLS -----------------------------------------------------------------

    def tls_flags(self, name: str) -> list[str]:
        """--tls-* for the component whose certificate is RUN_DIR/certs/NAME.pem."""
        return self.certs.flags(name) if self.certs is not None else []

    def client_tls(self, name: str = "query") -> TlsFiles | None:
        """The TLS files of a client certificate of this fleet; None without TLS."""
        return self.certs.client(name) if self.certs is not None else None

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
        self._group.stop()

    # -- individual processes ------------------------------------------------

    def start_checker(self, checker_id: str, *, wait: bool = True) -> Proc:
        if checker_id not in self.region_of:
            raise LaunchError(f"no checker {checker_id!r} in {self.fleet_path}")
        port = None
        if self.checker_metrics:
            port = self.checker_metrics_ports.get(checker_id) or self._ports.take()
            self.checker_metrics_ports[checker_id] = port
        args = checker_args(self.checks, self.fleet_path, checker_id, port,
                            self.tls_flags(f"checker-{checker_id}"))
        proc = self._spawn(f"checker-{checker_id}",
                           healthplane_argv("checker", *args, *self.log_args))
        self.checkers[checker_id] = proc
        if wait:
            self._wait_checker(checker_id)
        return proc

    def start_aggregator(self, index: int, *, wait: bool = True) -> Proc:
        while len(self.aggregator_http_ports) <= index:
            self.aggregator_http_ports.append(self._ports.take())
        args = aggregator_args(self.checks, self.fleet_path, self.aggregator_addresses[index],
                               self.aggregator_http_ports[index],
                               self.run_dir / f"aggregator-{index}.msgpack",
                               self.tls_flags("aggregator"))
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

    # -- internals -----------------------------------------------------------

    def _start_targets(self) -> None:
        o = self.targets_options
        assert o is not None and self.targets_control is not None
        self.targets = self._spawn("targets", targets_argv(self.checks, self.targets_control, o))
        host, port = parse_hostport(self.targets_control)
        self._wait(self.targets, lambda: tcp_open(host, port), "control port open")

    def _start_dns(self) -> None:
        assert self.zone is not None and self.dns_address is not None
        if self.dns_http_port is None:
            self.dns_http_port = self._ports.take()
        args = dns_args(self.zone, self.dns_address, self.tick, self.aggregator_addresses,
                        self.dns_http_port, self.tls_flags("dns"))
        self.dns = self._spawn("dns", healthplane_argv("dns", *args, *self.log_args))
        assert self.zone_config is not None
        host, port = self.dns_address
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

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        return self._group.spawn(name, argv)

    def _wait(self, proc: Proc, ready: Callable[[], object], what: str) -> None:
        wait_ready(proc, ready, what, self.ready_timeout)
