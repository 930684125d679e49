"""The target address policy and HOST:PORT parsing."""

import pytest
from healthplane.proto.config.addresses import forbidden_reason, is_ip_literal, parse_hostport


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("198.18.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd00::1", "private"),
        ("fec0::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        # IPv6 forms that reach an IPv4 address are judged by that address.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:0a00:0001::1", "private"),
        # Public and documentation addresses are allowed.
        ("8.8.8.8", None),
        ("172.32.0.1", None),
        ("192.0.2.10", None),
        ("198.51.100.7", None),
        ("2001:db8::1", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    assert forbidden_reason(address) == reason


def test_forbidden_reason_rejects_names() -> None:
    with pytest.raises(ValueError):
        forbidden_reason("example.com")


def test_is_ip_literal() -> None:
    assert is_ip_literal("192.0.2.1") and is_ip_literal("2001:db8::1")
    assert not is_ip_literal("api.example.com")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7000", ("127.0.0.1", 7000)),
        ("[::1]:7001", ("::1", 7001)),
        ("agg.example.com:443", ("agg.example.com", 443)),
        (" 127.0.0.1:1 ", ("127.0.0.1", 1)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize(
    "text", ["127.0.0.1", ":7000", "::1:7000", "[::1]7000", "host:0", "host:65536", "host:x"]
)
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(text)
