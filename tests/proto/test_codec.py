"""The 2-bit snapshot codec: one table drives both directions, then malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from healthplane.proto import codec
from healthplane.proto.codec import HEALTHY as H
from healthplane.proto.codec import UNHEALTHY as X
from healthplane.proto.codec import UNKNOWN as U
from healthplane.proto.codec import SnapshotError
from hypothesis import given, settings
from hypothesis import strategies as st

# (states, wire bytes). Byte 0 holds checks 0..3, check 0 in its top two bits;
# padding bits are zero.
CASES = [
    ([], b""),
    ([H], b"\x40"),
    ([X], b"\x80"),
    ([U], b"\x00"),
    ([H, X], b"\x60"),
    ([X, U, H], b"\x84"),
    ([U, H, X, H], b"\x19"),
    ([H, H, H, H], b"\x55"),
    ([X, X, X, X], b"\xaa"),
    ([H, X, U, U, X], b"\x60\x80"),
    ([X, H] * 4 + [H], b"\x99\x99\x40"),
    ([U] * 7 + [H], b"\x00\x01"),
    ([H] * 9, b"\x55\x55\x40"),
]


@pytest.mark.parametrize(("states", "data"), CASES)
def test_table_encode(states, data):
    assert codec.encode(states) == data
    assert codec.encode(np.array(states, dtype=np.uint8)) == data
    assert codec.pack(np.array(states, dtype=np.uint8)) == data
    assert codec.packed_size(len(states)) == len(data)


@pytest.mark.parametrize(("states", "data"), CASES)
def test_table_decode(states, data):
    decoded = codec.decode(data, len(states))
    assert decoded.dtype == np.uint8
    assert decoded.tolist() == states
    assert codec.unpack(data, len(states)).tolist() == states
    codec.validate(data, len(states))


@pytest.mark.parametrize(("states", "data"), CASES)
def test_table_planes(states, data):
    healthy, reporting = codec.planes(data)
    assert len(healthy) == len(reporting) == len(data)
    for i, state in enumerate(states):
        shift = 6 - 2 * (i % 4)
        assert (healthy[i // 4] >> shift) & 3 == (1 if state == H else 0)
        assert (reporting[i // 4] >> shift) & 3 == (1 if state in (H, X) else 0)
    # Only the low bit of each pair is ever set.
    assert not (healthy & codec.HIGH_BITS).any() and not (reporting & codec.HIGH_BITS).any()


def test_packed_size():
    assert [codec.packed_size(n) for n in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert codec.packed_size(1_000_000) == 250_000
    assert codec.packed_size(np.uint32(5)) == 2
    for bad in (-1, 2.5, "4", True, None):
        with pytest.raises(SnapshotError):
            codec.packed_size(bad)


# (payload, check_count, words the message must contain)
MALFORMED = [
    (b"", 1, "0 bytes, expected 1"),                        # truncated
    (b"\x55", 5, "1 bytes, expected 2"),                    # truncated
    (b"\x55\x55", 4, "2 bytes, expected 1"),                # oversized
    (b"\x40\x00", 1, "2 bytes, expected 1"),                # trailing garbage
    (b"\x00", 0, "1 bytes, expected 0"),                    # zero checks, one byte
    (b"\x41", 1, "padding bits set"),                       # padding after 1 check
    (b"\x44", 2, "padding bits set"),                       # padding after 2 checks
    (b"\x01", 3, "padding bits set"),                       # padding after 3 checks
    (b"\x55\x41", 5, "padding bits set"),
    (b"\xc0", 1, "reserved state 11 for check 0"),
    (b"\x03", 4, "reserved state 11 for check 3"),
    (b"\x55\x75", 8, "reserved state 11 for check 5"),
    (b"\x3f", 4, "reserved state 11 for check 1"),           # the first of several
    (b"\x00", -1, "check_count must be >= 0"),
]


@pytest.mark.parametrize(("data", "count", "words"), MALFORMED)
def test_malformed_payloads_raise_one_error_type(data, count, words):
    with pytest.raises(SnapshotError, match=words):
        codec.decode(data, count)
    with pytest.raises(SnapshotError):
        codec.validate(data, count)


def test_reserved_may_be_allowed_for_inspection():
    codec.validate(b"\xc0", 1, allow_reserved=True)
    with pytest.raises(SnapshotError, match="padding"):
        codec.validate(b"\xc3", 1, allow_reserved=True)


def test_every_prefix_of_a_payload_is_truncated():
    data = codec.encode([H, X, U, H, X, H, H, X, U, X])
    for cut in range(len(data)):
        with pytest.raises(SnapshotError, match="expected 3"):
            codec.decode(data[:cut], 10)


def test_decode_accepts_any_bytes_like():
    data = codec.encode([H, X, H])
    for view in (bytearray(data), memoryview(data)):
        assert codec.decode(view, 3).tolist() == [H, X, H]


@pytest.mark.parametrize("states", [
    [3], [H, 4], [-1], [256], [257], np.array([257]), np.array([-2]), [1.5], [True],
    [[H], [X]], "ab",
])
def test_encode_refuses_states_it_cannot_represent(states):
    with pytest.raises(SnapshotError):
        codec.encode(states)


def test_decode_returns_a_copy_it_may_keep():
    data = bytearray(codec.encode([H, H]))
    decoded = codec.decode(data, 2)
    data[0] = 0
    assert decoded.tolist() == [H, H]


def test_state_counts():
    assert codec.state_counts(codec.encode([H, X, X, U, H, H]), 6) == {
        "unknown": 1, "healthy": 3, "unhealthy": 2}


def test_a_million_checks():
    rng = np.random.default_rng(7)
    states = rng.integers(0, 3, size=1_000_000, dtype=np.uint8)
    data = codec.encode(states)
    assert len(data) == 250_000
    assert np.array_equal(codec.decode(data, states.size), states)
    healthy, reporting = codec.planes(data)
    assert int(np.unpackbits(healthy).sum()) == int((states == H).sum())
    assert int(np.unpackbits(reporting).sum()) == int((states != U).sum())


_states = st.lists(st.integers(0, 2), max_size=300)


@settings(max_examples=200, deadline=None)
@given(_states)
def test_round_trip(states):
    data = codec.encode(states)
    assert len(data) == codec.packed_size(len(states))
    assert codec.decode(data, len(states)).tolist() == states
    healthy, reporting = codec.planes(data)
    assert int(np.unpackbits(healthy).sum()) == states.count(H)
    assert int(np.unpackbits(reporting).sum()) == len(states) - states.count(U)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 330))
def test_arbitrary_bytes_decode_exactly_or_raise(data, count):
    try:
        states = codec.decode(data, count)
    except SnapshotError:
        return
    assert codec.encode(states) == data


@settings(max_examples=100, deadline=None)
@given(_states, st.binary(min_size=1, max_size=4))
def test_trailing_garbage_is_always_refused(states, garbage):
    with pytest.raises(SnapshotError):
        codec.decode(codec.encode(states) + garbage, len(states))
