"""Mutual TLS for every gRPC channel: flags, credentials, rotation.

Every component that speaks gRPC takes ``--tls-cert FILE --tls-key FILE
--tls-ca FILE`` (:func:`add_tls_arguments`); :func:`tls_from_args` turns
them into a :class:`TlsFiles`, which hands out

- :meth:`TlsFiles.server_credentials`: grpc's dynamic server credentials.
  Every new handshake asks a fetcher for the configuration, so a rotated
  certificate, key or CA is in use for the next connection without a
  restart; connections already open keep theirs. A client certificate
  signed by the CA is required.
- :meth:`TlsFiles.channel_credentials`: for clients. They verify the server
  certificate against the CA and the address dialled (a DNS or IP
  subjectAltName); callers build a fresh channel after a break, which then
  uses the files as last read.

:func:`tls_reloader` re-reads the three files through the shared
:class:`healthplane.runtime.reload.Reloader` (SIGHUP and the reload period).
The new set is adopted only when every file parses, the key matches the
certificate and the certificate chains to the CA; otherwise the old set
stays, and the failure is logged and counted (``reloads["failed"]``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from healthplane.runtime.files import UnreadableFile, read_bounded

log = logging.getLogger("healthplane.tls")

MAX_PEM_BYTES = 1 << 20

if TYPE_CHECKING:
    from healthplane.runtime.clock import Clock
    from healthplane.runtime.reload import Reloader


class TlsError(Exception):
    """A certificate, key or CA file that cannot be used (one line, names the file)."""


def add_tls_arguments(parser: argparse.ArgumentParser, *, insecure: bool = False) -> None:
    """--tls-cert, --tls-key, --tls-ca (and, for a server, --insecure)."""
    g = parser.add_argument_group("TLS (all three together: mutual TLS)")
    g.add_argument("--tls-cert", metavar="FILE",
                   help="this process's certificate chain (PEM)")
    g.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    g.add_argument("--tls-ca", metavar="FILE",
                   help="CA bundle (PEM) that signs every peer's certificate")
    if insecure:
        g.add_argument("--insecure", action="store_true",
                       help="without TLS, listen on a non-loopback address anyway: anyone "
                       "who can reach the port can report votes and read the topology")


def tls_usage_error(args: argparse.Namespace) -> str | None:
    """An error message when the TLS flags are given only in part."""
    given = [f for f, v in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key),
                            ("--tls-ca", args.tls_ca)) if v]
    if given and len(given) != 3:
        missing = [f for f in ("--tls-cert", "--tls-key", "--tls-ca") if f not in given]
        return f"{', '.join(given)} needs {' and '.join(missing)} too"
    if getattr(args, "insecure", False) and given:
        return "--insecure and --tls-* exclude each other"
    return None


def tls_from_args(args: argparse.Namespace) -> TlsFiles | None:
    """The TlsFiles the flags name (read and checked now), or None without them.

    Raises TlsError for a file that cannot be used.
    """
    if not args.tls_cert:
        return None
    return TlsFiles(args.tls_cert, args.tls_key, args.tls_ca)


@dataclass(frozen=True)
class Material:
    """One consistent set of PEM bytes."""

    cert: bytes
    key: bytes
    ca: bytes
    digest: str
    not_after: dt.datetime


def read_material(cert_path: str, key_path: str, ca_path: str) -> Material:
    """Read and check the three files; TlsError names the first problem."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def read(path: str, what: str) -> bytes:
        # Bounded and never blocking (a FIFO or /dev/zero is refused): no real
        # chain is anywhere near 1 MiB.
        try:
            return bytes(read_bounded(path, MAX_PEM_BYTES))
        except UnreadableFile as exc:
            raise TlsError(f"cannot read {what}: {exc}") from None

    cert_pem, key_pem, ca_pem = (read(cert_path, "certificate"), read(key_path, "key"),
                                 read(ca_path, "CA"))
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TlsError(f"{cert_path}: not a PEM certificate") from None
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise TlsError(f"{ca_path}: not a PEM CA certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsError(f"{key_path}: not an unencrypted PEM private key") from None
    leaf = chain[0]
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        matches = key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    except (TypeError, ValueError):   # a key type without that encoding
        matches = False
    if not matches:
        raise TlsError(f"{key_path}: key does not match the certificate {cert_path}")
    issuers = [*chain[1:], *cas]
    if not any(_signed_by(leaf, ca) for ca in issuers):
        raise TlsError(f"{cert_path}: not signed by a CA of {ca_path}")
    now = dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        raise TlsError(f"{cert_path}: expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M}Z")
    digest = hashlib.sha256(cert_pem + b"\0" + key_pem + b"\0" + ca_pem).hexdigest()[:16]
    return Material(cert_pem, key_pem, ca_pem, digest, leaf.not_valid_after_utc)


def certificate_dns_names(material: Material) -> frozenset[str]:
    """The DNS subjectAltNames of the leaf certificate of material."""
    from cryptography import x509
    leaf = x509.load_pem_x509_certificates(material.cert)[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(san.value.get_values_for_type(x509.DNSName))


def _signed_by(cert: object, ca: object) -> bool:
    try:
        cert.verify_directly_issued_by(ca)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - wrong issuer, bad signature or unsupported key
        return False
    return True


class TlsFiles:
    """The certificate, key and CA files of one process, re-readable."""

    def __init__(self, cert: str, key: str, ca: str) -> None:
        self.paths = (cert, key, ca)
        self._material = read_material(cert, key, ca)
        self._lock = threading.Lock()     # the fetcher runs on a gRPC thread
        self._served: str | None = None   # digest the server credentials last handed out
        self.reloads: Counter[str] = Counter()

    @property
    def material(self) -> Material:
        return self._material

    def load(self) -> Material:
        """Read and check the files (for a Reloader): ConfigError names the problem."""
        from healthplane.proto.config.errors import ConfigError
        try:
            return read_material(*self.paths)
        except TlsError as exc:
            raise ConfigError([str(exc)]) from None

    def adopt(self, material: Material) -> bool:
        """Use material for new connections; False when it is the set in use."""
        with self._lock:
            if material.digest == self._material.digest:
                return False
            self._material = material
        log.info("TLS files adopted",
                 extra={"not_after": f"{material.not_after:%Y-%m-%dT%H:%M}Z"})
        return True

    def reload(self) -> bool:
        """Re-read the files now; True when a changed, valid set was adopted.

        A bad set keeps the running one: logged, counted. Commands run this
        through :func:`tls_reloader` (SIGHUP and a period, like the config).
        """
        try:
            material = read_material(*self.paths)
        except TlsError as exc:
            self.reloads["failed"] += 1
            log.error("TLS files not reloaded, kept the running ones",
                      extra={"problem": str(exc)})
            return False
        adopted = self.adopt(material)
        self.reloads["adopted" if adopted else "unchanged"] += 1
        return adopted

    def _config(self, m: Material) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(m.key, m.cert)], m.ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before every handshake: None keeps the current one.
        with self._lock:
            m = self._material
            if m.digest == self._served:
                return None
            self._served = m.digest
        return self._config(m)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials that require a client certificate from the CA and follow reloads."""
        with self._lock:
            m = self._material
            self._served = m.digest
        return grpc.dynamic_ssl_server_credentials(
            self._config(m), self._fetch, require_client_authentication=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Client credentials from the files as last read."""
        m = self._material
        return grpc.ssl_channel_credentials(root_certificates=m.ca, private_key=m.key,
                                            certificate_chain=m.cert)


def tls_reloader(tls: TlsFiles, *, clock: Clock, period: float,
                 logger: logging.Logger | None = None) -> Reloader[Material]:
    """The shared Reloader for tls's three files: trigger() on SIGHUP, run() as a task.

    Unchanged files are not parsed again; results land in ``tls.reloads``.
    """
    from healthplane.runtime.files import Fingerprint
    from healthplane.runtime.reload import Reloader

    fingerprint = Fingerprint(tls.paths, MAX_PEM_BYTES)
    try:
        running: bytes | None = fingerprint()
    except UnreadableFile:
        running = None
    return Reloader("certificates", tls.load, tls.adopt, clock=clock, period=period,
                    count=lambda result: tls.reloads.update([result]),
                    fingerprint=fingerprint, running=running, logger=logger or log)


def secure_channel(target: str, tls: TlsFiles | None, options: object = (),
                   *, aio: bool = True) -> grpc.Channel | grpc.aio.Channel:
    """A channel to target: TLS when tls is given, else plaintext."""
    opts = list(options)  # type: ignore[call-overload]
    if aio:
        if tls is None:
            return grpc.aio.insecure_channel(target, options=opts)
        return grpc.aio.secure_channel(target, tls.channel_credentials(), options=opts)
    if tls is None:
        return grpc.insecure_channel(target, options=opts)
    return grpc.secure_channel(target, tls.channel_credentials(), options=opts)


def peer_dns_names(context: grpc.aio.ServicerContext) -> frozenset[str]:
    """The DNS subjectAltNames of the client certificate of this call's connection.

    Empty on a plaintext connection and for a certificate without DNS SANs
    (the common name never counts).
    """
    auth = context.auth_context()
    return frozenset(v.decode("ascii", "replace") for v in auth.get("peer_dns", ()))
