"""``HOST:PORT`` addresses: one parser for every flag, config field and log line.

``parse_hostport`` reads an address to connect to (port 1..65535);
``parse_listen`` an address to listen on, where port 0 means "pick a free
port". IPv6 addresses are written in brackets, ``[::1]:53``.
``format_hostport`` writes them back the same way. Errors are ValueError
with a one-line message that quotes the input. ``check_bindable`` and
``is_loopback`` answer, before a server binds, whether it can and whether
the address is private to this host.
"""

from __future__ import annotations

import ipaddress
import socket


def parse_hostport(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """Split "HOST:PORT" or "[V6]:PORT" into (host, port); ValueError if malformed."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            raise ValueError(f"{text!r} is not HOST:PORT (write IPv6 as [ADDR]:PORT)")
        host, port_text = text[1:end], text[end + 2:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} is not HOST:PORT")
        if ":" in host:
            raise ValueError(f"{text!r} is not HOST:PORT (write IPv6 as [ADDR]:PORT)")
    if not host:
        raise ValueError(f"{text!r} has no host")
    if any(c.isspace() for c in host):
        raise ValueError(f"{text!r}: the host has white space in it")
    lowest = 0 if allow_port_zero else 1
    if not (port_text.isascii() and port_text.isdigit()) or not lowest <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be {lowest}..65535")
    return host, int(port_text)


def parse_listen(text: str) -> tuple[str, int]:
    """An address to listen on: like parse_hostport, and port 0 picks a free port."""
    return parse_hostport(text, allow_port_zero=True)


def format_hostport(host: str, port: int) -> str:
    """The inverse of parse_hostport: brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_bindable(listen: str, host: str, port: int) -> None:
    """Raise OSError naming the reason when host:port cannot be bound.

    gRPC reports a failed bind only as "no address added" after printing its
    own log line; trying first gives the operator the real reason, once.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {listen}: {exc.strerror}") from None
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
            try:
                s.bind(addr)
            except OSError as exc:
                raise OSError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


def is_loopback(host: str) -> bool:
    """True when every address host stands for is a loopback one."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)
