"""Syntax of the names config files use: ids, host names and DNS names."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

# Check ids, checker ids and region names.
ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
ID_RULE = "must be 1..64 characters of A-Z a-z 0-9 . _ -"

# A label of a host or DNS name. Underscores are allowed because real names
# (_acme-challenge, service records, some internal hosts) use them.
_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def is_id(text: str) -> bool:
    return ID_RE.fullmatch(text) is not None


def id_problem(text: str) -> str:
    """Why text is not an id, for a message (the caller checked is_id)."""
    if len(text) > 64:
        return f"{ID_RULE} (got {len(text)} characters)"
    return f"{ID_RULE} (got {text!r})"


def forget() -> None:
    """Empty the caches below. Called after a registry is read: what they
    hold was made in the middle of the parse, and kept, those few thousand
    objects would pin the parse's freed memory in the process for good."""
    ip_literal.cache_clear()
    is_domain_name.cache_clear()


# Large registries repeat the same hosts; parsing an address is not cheap.
@lru_cache(maxsize=4096)
def ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # An IPv4 literal starts with a digit and an IPv6 one has a colon; most
    # registry hosts are names, and a failed parse costs two exceptions.
    if ":" not in text and not ("0" <= text[:1] <= "9"):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def is_domain_name(text: str) -> bool:
    """True for a name like api.example.com or api.example.com. (<= 253 chars).

    A name whose last label is all digits is refused: 192.0.2.300 is a
    mistyped address, not a host name (RFC 3696 section 2).
    """
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if not all(_LABEL_RE.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def is_host(text: str) -> bool:
    """An IP address or a host name."""
    return ip_literal(text) is not None or is_domain_name(text)


def is_localhost(text: str) -> bool:
    """localhost and *.localhost always resolve to loopback (RFC 6761)."""
    name = text.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def absolute_name(text: str) -> str:
    """Lower-case text and end it with a dot; the caller checked is_domain_name."""
    name = text.lower()
    return name if name.endswith(".") else name + "."
