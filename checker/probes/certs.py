"""Certificate expiry of TLS probes: the leaf's notAfter, parsed once per certificate.

Every TLS probe (https, grpc with ``tls``) records when the certificate its
target presented expires, verified or not, so an operator sees a
certificate time bomb weeks before it goes off. The certificate's DER bytes
are the cache key: a target presents the same certificate probe after
probe, so each distinct certificate is parsed once, not once per probe.
"""

from __future__ import annotations

import asyncio

from cryptography import x509

from .base import NO_CERT

_MAX_CACHED = 10_000     # distinct certificates remembered; a bound, not a tuning knob
_NOT_AFTER: dict[bytes, float] = {}


def not_after(der: bytes | None) -> float:
    """notAfter of a DER certificate as Unix seconds; NaN when absent or unreadable."""
    if not der:
        return NO_CERT
    cached = _NOT_AFTER.get(der)
    if cached is None:
        try:
            cached = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
        except ValueError:
            cached = NO_CERT
        if len(_NOT_AFTER) >= _MAX_CACHED:
            _NOT_AFTER.clear()
        _NOT_AFTER[der] = cached
    return cached


def peer_not_after(transport: asyncio.BaseTransport) -> float:
    """notAfter of the certificate the peer of a TLS transport presented."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return NO_CERT
    try:
        der = ssl_object.getpeercert(True)
    except ValueError:   # handshake not done: no certificate to read
        return NO_CERT
    return not_after(der)
