"""Target address policy and HOST:PORT parsing, shared by config and probes.

A health checker that will probe any address it is told to is a tool for
scanning the network it runs in (and for reaching cloud metadata services at
169.254.169.254). Targets in loopback, private, link-local, multicast or
unspecified ranges are therefore refused unless the fleet sets
``allow_private_targets: true``. The config loader applies this to literal
addresses; probes apply it again to whatever a host name resolves to.

Documentation ranges such as 192.0.2.0/24 are deliberately *not* refused
(Python's ``is_private`` counts them): they are what examples use.
"""

from __future__ import annotations

import ipaddress

# One HOST:PORT parser for config fields and flags alike.
from healthplane.runtime.listen import parse_hostport

__all__ = ["forbidden_reason", "is_ip_literal", "parse_hostport"]

_V4_FORBIDDEN: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "private"),         # carrier-grade NAT, RFC 6598
        ("169.254.0.0/16", "link-local"),     # includes cloud metadata 169.254.169.254
        ("198.18.0.0/15", "private"),         # benchmarking networks, RFC 2544
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),          # includes broadcast 255.255.255.255
    )
)
_V6_FORBIDDEN: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "private"),              # unique local addresses
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),             # deprecated site-local, still routed inside sites
        ("ff00::/8", "multicast"),
    )
)


def forbidden_reason(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why address may not be probed ("loopback", "private", ...), or None.

    Raises ValueError when address is not an IP address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and friends reach the IPv4 address they embed.
        embedded = ip.ipv4_mapped or ip.sixtofour or _embedded_v4(ip)
        if embedded is not None:
            return forbidden_reason(embedded)
        for net, why in _V6_FORBIDDEN:
            if ip in net:
                return why
        return None
    for net4, why in _V4_FORBIDDEN:
        if ip in net4:
            return why
    return None


_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")       # deprecated ::a.b.c.d
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")         # RFC 6052 well-known prefix


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-compatible or NAT64 address reaches, if any."""
    if (ip in _V4_COMPATIBLE and int(ip) > 1) or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
