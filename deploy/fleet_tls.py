"""The development certificates of a launched fleet and the flags that use them.

Every component gets its own certificate under one CA in ``RUN_DIR/certs``
(see :mod:`healthplane.certs`), so every gRPC channel of the fleet runs
with mutual TLS.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from healthplane.runtime.tls import TlsFiles

__all__ = ["FleetCerts"]


class FleetCerts:
    """A fleet's certificate folder: NAME.pem, NAME-key.pem and ca.pem."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def write(cls, folder: Path, checker_ids: Sequence[str],
              aggregators: Sequence[str]) -> FleetCerts:
        """Write a CA and a certificate per component into folder."""
        from healthplane.certs import write_fleet_certs
        write_fleet_certs(folder, checker_ids, aggregators)
        return cls(folder)

    def flags(self, name: str) -> list[str]:
        """--tls-* for the component whose certificate is NAME.pem."""
        d = self.folder
        return ["--tls-cert", str(d / f"{name}.pem"), "--tls-key", str(d / f"{name}-key.pem"),
                "--tls-ca", str(d / "ca.pem")]

    def client(self, name: str = "query") -> TlsFiles:
        """The TLS files of the client certificate NAME."""
        d = self.folder
        return TlsFiles(str(d / f"{name}.pem"), str(d / f"{name}-key.pem"), str(d / "ca.pem"))

