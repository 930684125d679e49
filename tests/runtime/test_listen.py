"""HOST:PORT parsing: one parser, one-line errors, IPv6 in brackets, port 0 to listen."""

from __future__ import annotations

import pytest

from healthplane.runtime.listen import format_hostport, parse_hostport, parse_listen


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:7000", ("127.0.0.1", 7000)),
    ("[::1]:53", ("::1", 53)),
    ("[2001:db8::1]:8443", ("2001:db8::1", 8443)),
    ("agg.example.com:443", ("agg.example.com", 443)),
    (" 127.0.0.1:1 ", ("127.0.0.1", 1)),
    ("localhost:65535", ("localhost", 65535)),
])
def test_good_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected
    assert parse_listen(text) == expected


def test_port_zero_is_only_for_listening() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError, match=r"^'127.0.0.1:0': port must be 1..65535$"):
        parse_hostport("127.0.0.1:0")


@pytest.mark.parametrize(("text", "message"), [
    ("127.0.0.1", "'127.0.0.1' is not HOST:PORT"),
    (":7000", "':7000' has no host"),
    ("::1:53", "'::1:53' is not HOST:PORT (write IPv6 as [ADDR]:PORT)"),
    ("[::1]53", "'[::1]53' is not HOST:PORT (write IPv6 as [ADDR]:PORT)"),
    ("[::1", "'[::1' is not HOST:PORT (write IPv6 as [ADDR]:PORT)"),
    ("[]:53", "'[]:53' has no host"),
    ("host:65536", "'host:65536': port must be 0..65535"),
    ("host:x", "'host:x': port must be 0..65535"),
    ("host:-1", "'host:-1': port must be 0..65535"),
    ("host:", "'host:': port must be 0..65535"),
    ("host:٣", "'host:٣': port must be 0..65535"),
    ("a b:53", "'a b:53': the host has white space in it"),
    ("", "'' is not HOST:PORT"),
])
def test_bad_addresses_give_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_listen(text)
    assert str(err.value) == message and "\n" not in str(err.value)


def test_format_round_trips() -> None:
    for host, port in (("127.0.0.1", 53), ("::1", 53), ("example.com", 0)):
        assert parse_listen(format_hostport(host, port)) == (host, port)
    assert format_hostport("::1", 53) == "[::1]:53"
