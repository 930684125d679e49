"""Sans-IO codec for the 2-bit snapshot layout.

Check *i* occupies bits 2i and 2i+1 of a bit string whose bits run most
significant first within each byte, so byte 0 holds checks 0..3 with check 0
in its top two bits::

    00 unknown    01 healthy    10 unhealthy    11 reserved

A payload is exactly ``ceil(2 * check_count / 8)`` bytes and its padding bits
are zero. Everything here works on bytes and numpy arrays only: no sockets, no
asyncio, no grpc. Every malformed payload raises :class:`SnapshotError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UNKNOWN = 0
HEALTHY = 1
UNHEALTHY = 2
RESERVED = 3

# The one table of state names, indexed by the 2-bit code. The protobuf
# Status enum and a Query's vote use the same numbers (STATUS_HEALTHY == 1).
STATE_NAMES = ("unknown", "healthy", "unhealthy", "reserved")
# The states a published check or a vote can have (11 is never valid).
VALID_STATES = (UNKNOWN, HEALTHY, UNHEALTHY)


def state_name(code: int) -> str:
    """The name of a 2-bit state code (or of the equal protobuf Status value)."""
    return STATE_NAMES[code] if 0 <= code < len(STATE_NAMES) else f"state {code}"

# Within a byte, a check's "healthy" bit is the low bit of its pair and its
# "unhealthy" bit the high one; these masks pick one bit of every pair.
LOW_BITS = 0x55
HIGH_BITS = 0xAA

# Shifts that move check k of a byte (k = 0..3) into the low two bits.
_SHIFTS = np.array([6, 4, 2, 0], dtype=np.uint8)


class SnapshotError(ValueError):
    """A snapshot payload that does not fit the layout."""


def packed_size(check_count: int) -> int:
    """Bytes needed for check_count 2-bit states."""
    if isinstance(check_count, bool) or not isinstance(check_count, (int, np.integer)):
        raise SnapshotError(f"check_count must be an integer, got {check_count!r}")
    if check_count < 0:
        raise SnapshotError(f"check_count must be >= 0, got {check_count}")
    return (2 * check_count + 7) // 8


def _padding_mask(check_count: int) -> int:
    """Mask of the padding bits in the last byte (0 when there are none)."""
    used = check_count % 4
    return 0 if used == 0 else (0xFF >> (2 * used))


def validate(data: bytes | bytearray | memoryview, check_count: int,
             *, allow_reserved: bool = False) -> None:
    """Raise SnapshotError unless data is a well-formed payload.

    Costs one pass over the payload with numpy whatever its content, so a
    malformed message takes no longer to reject than a good one to accept.
    """
    size = packed_size(check_count)
    if len(data) != size:
        raise SnapshotError(
            f"payload is {len(data)} bytes, expected {size} for {check_count} checks")
    if size == 0:
        return
    mask = _padding_mask(check_count)
    if mask and data[-1] & mask:
        raise SnapshotError(f"padding bits set in last byte (0x{data[-1]:02x})")
    if not allow_reserved:
        arr = np.frombuffer(data, dtype=np.uint8)
        reserved = arr & (arr >> 1) & LOW_BITS
        if reserved.any():
            byte = int(np.flatnonzero(reserved)[0])
            bits = int(reserved[byte])
            pair = 3 - (bits.bit_length() - 1) // 2
            raise SnapshotError(f"reserved state 11 for check {4 * byte + pair}")


def encode(states: Sequence[int] | np.ndarray) -> bytes:
    """Pack per-check states (values 0..2) into the wire layout."""
    # Range-check before narrowing to uint8: a cast first would wrap 257 to
    # 1 (healthy) or 258 to 2 silently, and raise OverflowError for -1.
    try:
        arr = np.asarray(states)
    except ValueError as exc:
        raise SnapshotError(f"states are not a flat sequence of integers: {exc}") from None
    if arr.ndim != 1:
        raise SnapshotError("states must be one-dimensional")
    if arr.size == 0:
        return b""
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise SnapshotError(f"states must be integers 0, 1 or 2, got {arr.dtype} values")
    bad = (arr < UNKNOWN) | (arr > UNHEALTHY)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SnapshotError(f"state {int(arr[first])} for check {first} is not 0, 1 or 2")
    return pack(arr.astype(np.uint8))


def pack(arr: np.ndarray) -> bytes:
    """Pack a uint8 array of 2-bit values without validating them (hot path)."""
    n = arr.size
    padded = np.zeros(packed_size(n) * 4, dtype=np.uint8)
    padded[:n] = arr
    quads = padded.reshape(-1, 4)
    out = (quads[:, 0] << 6) | (quads[:, 1] << 4) | (quads[:, 2] << 2) | quads[:, 3]
    return out.astype(np.uint8).tobytes()


def decode(data: bytes | bytearray | memoryview, check_count: int) -> np.ndarray:
    """Unpack a payload into a uint8 array of check_count states (0..2)."""
    validate(data, check_count)
    return unpack(data, check_count)


def unpack(data: bytes | bytearray | memoryview, check_count: int) -> np.ndarray:
    """Unpack without validating (the caller already did)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    states = (arr[:, None] >> _SHIFTS) & 0x3
    return states.reshape(-1)[:check_count].copy()


def planes(data: bytes | bytearray | memoryview) -> tuple[np.ndarray, np.ndarray]:
    """Return the (healthy, reporting) bit planes of a payload, still interleaved.

    Both are uint8 arrays the size of the payload with only the low bit of
    each pair possibly set: ``healthy`` where the state is 01, ``reporting``
    where it is 01 or 10. Kept interleaved (not compacted) because counting
    votes works word-parallel on that form without any shuffling.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    high = (arr >> 1) & LOW_BITS
    low = arr & LOW_BITS
    return low & ~high & LOW_BITS, (low | high)


def state_counts(data: bytes | bytearray | memoryview, check_count: int) -> dict[str, int]:
    """Count checks per state name, for summaries and logs."""
    states = unpack(data, check_count)
    counts = np.bincount(states, minlength=4)
    return {STATE_NAMES[code]: int(counts[code]) for code in VALID_STATES}
