"""The command line of each healthplane process a launched fleet runs.

Each is ``python -m healthplane COMMAND`` by this interpreter (no PATH
lookup), with the fleet's files, the component's listen addresses and
TLS flags; the launcher adds its logging flags.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["aggregator_args", "checker_args", "dns_args", "healthplane_argv"]


def healthplane_argv(command: str, *args: str) -> list[str]:
    """argv for a healthplane subcommand run by this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "healthplane", command, *args]


def checker_args(checks: Path, fleet: Path, checker_id: str, metrics_port: int | None,
                 tls: Sequence[str]) -> list[str]:
    args = ["--checks", str(checks), "--fleet", str(fleet), "--id", checker_id]
    if metrics_port is not None:
        args += ["--metrics", f"127.0.0.1:{metrics_port}"]
    return args + list(tls)


def aggregator_args(checks: Path, fleet: Path, address: str, http_port: int,
                    snapshot_file: Path, tls: Sequence[str]) -> list[str]:
    # Each aggregator keeps its snapshot file in the run folder, so a
    # restarted one reads back its last states (aggregator.warmstart).
    return ["--checks", str(checks), "--fleet", str(fleet),
            "--listen", address, *tls,
            "--http", f"127.0.0.1:{http_port}",
            "--snapshot-file", str(snapshot_file)]


def dns_args(zone: Path, listen: tuple[str, int], tick: float, aggregators: Sequence[str],
             http_port: int, tls: Sequence[str]) -> list[str]:
    host, port = listen
    # --tick lets the front notice at once an aggregator that falls behind.
    args = ["--zone", str(zone), "--listen", f"{host}:{port}", "--tick", str(tick)]
    for a in aggregators:
        args += ["--aggregator", a]
    return args + list(tls) + ["--http", f"127.0.0.1:{http_port}"]
