"""The codec against an independent reference: bitarray in 'big' bit order.

design.md defines the layout as bitarray's big-endian bit order, two bits per
check; building the same bytes with bitarray checks our numpy packing against
that definition rather than against itself.
"""

from __future__ import annotations

import numpy as np
from bitarray import bitarray
from healthplane.proto import codec
from hypothesis import given
from hypothesis import strategies as st


def reference_encode(states: list[int]) -> bytes:
    bits = bitarray(endian="big")
    for state in states:
        bits.extend(((state >> 1) & 1, state & 1))
    return bits.tobytes()   # pads the last byte with zero bits


def reference_decode(data: bytes, count: int) -> list[int]:
    bits = bitarray(endian="big")
    bits.frombytes(data)
    return [(bits[2 * i] << 1) | bits[2 * i + 1] for i in range(count)]


@given(st.lists(st.sampled_from([codec.UNKNOWN, codec.HEALTHY, codec.UNHEALTHY]),
                max_size=300))
def test_encode_matches_bitarray(states: list[int]) -> None:
    assert codec.encode(states) == reference_encode(states)


@given(st.lists(st.sampled_from([codec.UNKNOWN, codec.HEALTHY, codec.UNHEALTHY]),
                max_size=300))
def test_decode_matches_bitarray(states: list[int]) -> None:
    data = reference_encode(states)
    decoded = codec.decode(data, len(states))
    assert decoded.tolist() == reference_decode(data, len(states)) == states


def test_check_zero_is_in_the_top_bits_of_byte_zero() -> None:
    assert reference_encode([codec.HEALTHY]) == bytes([0b0100_0000])
    assert codec.encode(np.array([codec.HEALTHY])) == bytes([0b0100_0000])
