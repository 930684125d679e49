"""``healthplane certs --out DIR``: a development CA and a certificate for every component.

    healthplane certs --out DIR [--fleet fleet.yaml] [--aggregator HOST ...] [--days N]

Writes, each certificate beside its key (``NAME.pem``, ``NAME-key.pem``,
keys readable by the owner only):

    ca.pem, ca-key.pem                 the development CA (keep ca-key.pem away
                                       from the fleet; only ca.pem is shared)
    aggregator.pem                     server: every aggregator host of the fleet
                                       and localhost, 127.0.0.1, ::1 as DNS/IP SANs
    checker-ID.pem                     client: DNS SAN = the checker id, one per
                                       checker of fleet.yaml (the id it may report as)
    dns.pem, query.pem, pdns-backend.pem   clients of the Health API

This is for development and the demo. In production bring your own PKI: the
README lists the SANs each component needs. Keys are ECDSA P-256, whose
handshakes cost a fraction of RSA's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from healthplane.runtime.logs import add_log_flags, setup_from_args

PROG = "healthplane certs"
CLIENTS = ("dns", "query", "pdns-backend")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_ca(name: str = "healthplane development CA", *, days: int = 365,
           not_before: dt.datetime | None = None) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = not_before or _now() - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def san_of(name: str) -> x509.GeneralName:
    """An IP address SAN for an address, else a DNS name SAN."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return x509.DNSName(name)


def issue(ca: Issued, common_name: str, sans: Iterable[str], *, server: bool = False,
          client: bool = True, days: int = 365, not_before: dt.datetime | None = None
          ) -> Issued:
    """A leaf certificate signed by ca. No SANs at all when sans is empty."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - dt.timedelta(minutes=5)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca.cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    names = [san_of(s) for s in dict.fromkeys(sans)]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def write_pair(out: Path, name: str, issued: Issued) -> None:
    """NAME.pem (0644) and NAME-key.pem (0600), each replaced atomically."""
    _write(out / f"{name}.pem", issued.cert_pem(), 0o644)
    _write(out / f"{name}-key.pem", issued.key_pem(), 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def aggregator_hosts(addresses: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The host part of each HOST:PORT, the extra hosts, and the loopback names."""
    from healthplane.proto.config.addresses import parse_hostport
    hosts = [parse_hostport(a)[0] for a in addresses] + [h.strip("[]") for h in extra]
    return list(dict.fromkeys([*hosts, *LOOPBACK]))


def write_fleet_certs(out: Path, checker_ids: Sequence[str], aggregator_addresses: Sequence[str],
                      *, extra_hosts: Sequence[str] = (), days: int = 365) -> None:
    """Everything a fleet needs to run with mutual TLS, into out."""
    out.mkdir(parents=True, exist_ok=True)
    ca = new_ca(days=days)
    write_pair(out, "ca", ca)
    hosts = aggregator_hosts(aggregator_addresses, extra_hosts)
    write_pair(out, "aggregator", issue(ca, "aggregator", hosts, server=True, days=days))
    for cid in checker_ids:
        write_pair(out, f"checker-{cid}", issue(ca, cid, [cid], days=days))
    for name in CLIENTS:
        write_pair(out, name, issue(ca, name, [f"{name}.healthplane"], days=days))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Write a development CA and "
                                "certificates for every component of a fleet (mutual TLS).")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    p.add_argument("--fleet", metavar="PATH",
                   help="fleet.yaml: one checker certificate per checker id, and the "
                   "aggregators' hosts as SANs")
    p.add_argument("--aggregator", action="append", default=[], metavar="HOST",
                   help="another name or address the aggregators are dialled by (repeatable)")
    p.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    add_log_flags(p, default="warning")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_from_args(args)
    if not 1 <= args.days <= 3650:
        print(f"{PROG}: --days must be 1..3650", file=sys.stderr)
        return 2
    checker_ids: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    if args.fleet:
        from healthplane.proto.config.errors import ConfigError
        from healthplane.proto.config.loader import load_fleet
        try:
            fleet = load_fleet(args.fleet)
        except ConfigError as exc:
            for line in exc.errors:
                print(f"{PROG}: {line}", file=sys.stderr)
            return 1
        checker_ids = fleet.checker_ids
        addresses = fleet.aggregators
    out = Path(args.out)
    try:
        write_fleet_certs(out, checker_ids, addresses, extra_hosts=args.aggregator,
                          days=args.days)
    except (OSError, ValueError) as exc:
        print(f"{PROG}: {out}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote a CA and {len(checker_ids) + 1 + len(CLIENTS)} certificates to {out}")
    return 0
