"""Slot storage and the word-parallel vote count.

The aggregator keeps one slot per checker: the checker's latest snapshot
payload, in the 2-bit layout of design.md. :class:`SlotMatrix` holds every
slot in one preallocated numpy array; :class:`VoteCounter` counts, for every
check at once, the healthy (``01``) and unhealthy (``10``) votes of the fresh
slots with SWAR arithmetic (several small counters packed in one uint64 word)
and no Python loop per check or per checker.

SlotMatrix API (what the gRPC ingest path calls)::

    slots = SlotMatrix(n_rows=len(fleet.checker_ids), check_count=registry.check_count)
    slots.write(row, payload)     # copy a validated payload into its row: O(nbytes), no allocation
    slots.clear(row)              # the row votes unknown for every check
    bytes(slots.row(row))         # the row's payload back (a lazy view; slots.row(r)[i] is byte i)
    slots.votes_of(check_index)   # uint8 array: every row's 2-bit state for one check

Rows follow ``Fleet.checker_ids``. ``write`` expects a payload that passed
:func:`proto.codec.validate` (right length, zero padding, no ``11``): the
count treats a ``11`` pair as one healthy and one unhealthy vote. When each
row was received, and so which rows are fresh, is the caller's business; the
count takes a boolean ``fresh`` mask per row.

Memory layout (why it is not simply ``[rows, bytes]``): the words are stored
chunk-major, ``words[chunk, row, word]``, so the block of every checker's
words for one range of checks is contiguous and stays in the L2 cache while
it is counted. Rows are padded with zero rows to a multiple of 3 and the
payload with zero words to a whole number of chunks; both paddings never
vote.

Lane order: the count produces per-check numbers in *lane order*, the order
the SWAR folds leave them in, not check order. Check ``i`` sits at lane
``lane_of(i)``; :func:`to_check_order` undoes the permutation. Keeping lane
order through the tick spares a strided byte shuffle of every check on every
tick; only readers that need check order pay for it. The compiled count
(:mod:`healthplane.aggregator.tick_kernel`) reads the same chunk-major words
and writes the same lane order, so the two are interchangeable.
"""

from __future__ import annotations

import numpy as np
from healthplane.proto import codec

# Masks that keep one field of each 2-, 4- and 8-bit lane.
_M1 = np.uint64(0x5555_5555_5555_5555)
_M2 = np.uint64(0x3333_3333_3333_3333)
_M4 = np.uint64(0x0F0F_0F0F_0F0F_0F0F)
_ZERO = np.uint64(0)

# The fold schedule: 3 rows summed in 2-bit lanes (max 3), then 5 of those
# in 4-bit lanes (max 15), then up to 17 of those in 8-bit lanes (max 255).
# Rows are padded to a multiple of 3 only; the 4-bit stage pads its own
# (cache-resident) input with zeros instead, so 16 checkers cost 18 rows of
# work, not 30.
ROW_GROUP = 3
FOLD4 = 5
BATCH_ROWS = 255
DEFAULT_CHUNK_WORDS = 1024  # 100 rows x 8 KiB per block: about L2-sized, few numpy calls


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _chunking(check_count: int, chunk_words: int) -> tuple[int, int]:
    """(chunk_words, n_chunks) of a row of check_count checks."""
    words = max(1, _ceil_div(codec.packed_size(check_count), 8))
    # As few chunks as chunk_words allows, then as even as they can be: the
    # padding stays under one word per chunk (a fixed 1024 padded 100,000
    # checks to 131,072 lanes, and every per-lane pass paid for them).
    n_chunks = _ceil_div(words, chunk_words)
    return _ceil_div(words, n_chunks), n_chunks


def lane_words_for(check_count: int, chunk_words: int = DEFAULT_CHUNK_WORDS) -> int:
    """SlotMatrix(n, check_count, chunk_words=chunk_words).lane_words, for any n."""
    c, n = _chunking(check_count, chunk_words)
    return c * n


class SlotRow:
    """A read-only view of one slot's payload (bytes() gives a copy)."""

    __slots__ = ("_slots", "_row")

    def __init__(self, slots: SlotMatrix, row: int) -> None:
        self._slots, self._row = slots, row

    def __len__(self) -> int:
        return self._slots.nbytes

    def __getitem__(self, index: int) -> int:
        n = self._slots.nbytes
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("slot byte index out of range")
        cb = self._slots.chunk_bytes
        return int(self._slots._bytes[index // cb, self._row, index % cb])

    def __bytes__(self) -> bytes:
        return self.tobytes()

    def tobytes(self) -> bytes:
        s = self._slots
        return s._bytes[:, self._row, :].reshape(-1)[: s.nbytes].tobytes()


class SlotMatrix:
    """Every checker's latest payload, laid out for the vote count."""

    def __init__(self, n_rows: int, check_count: int, *,
                 chunk_words: int = DEFAULT_CHUNK_WORDS) -> None:
        if n_rows < 0:
            raise ValueError(f"n_rows must be >= 0, got {n_rows}")
        if chunk_words < 1:
            raise ValueError(f"chunk_words must be >= 1, got {chunk_words}")
        self.n_rows = n_rows
        self.check_count = check_count
        self.nbytes = codec.packed_size(check_count)
        self.chunk_words, self.n_chunks = _chunking(check_count, chunk_words)
        self.chunk_bytes = 8 * self.chunk_words
        self.rows_padded = max(ROW_GROUP, _ceil_div(n_rows, ROW_GROUP) * ROW_GROUP)
        self.words = np.zeros((self.n_chunks, self.rows_padded, self.chunk_words),
                              dtype=np.uint64)
        self._bytes = self.words.view(np.uint8)

    @property
    def lane_words(self) -> int:
        """Words per row including padding; the count yields 32 lanes per word."""
        return self.n_chunks * self.chunk_words

    def _check_row(self, row: int) -> None:
        if not 0 <= row < self.n_rows:
            raise IndexError(f"row {row} out of range for {self.n_rows} checkers")

    def write(self, row: int, payload: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Overwrite row with a validated payload (exactly nbytes long)."""
        self._check_row(row)
        src = np.frombuffer(payload, dtype=np.uint8) if not isinstance(payload, np.ndarray) \
            else payload.reshape(-1).view(np.uint8)
        if src.size != self.nbytes:
            raise ValueError(f"payload is {src.size} bytes, expected {self.nbytes}")
        cb, n = self.chunk_bytes, self.nbytes
        full, rest = divmod(n, cb)
        dst = self._bytes[:, row, :]
        if full:
            dst[:full] = src[: full * cb].reshape(full, cb)
        if rest:
            # The bytes after `rest` are payload padding; they are never written,
            # so they stay zero and never vote.
            dst[full, :rest] = src[full * cb:]

    def clear(self, row: int) -> None:
        """Make row vote unknown for every check."""
        self._check_row(row)
        self._bytes[:, row, :] = 0

    def row(self, row: int) -> SlotRow:
        """The row's payload as a lazy view (index it, or bytes() it)."""
        self._check_row(row)
        return SlotRow(self, row)

    def votes_of(self, check_index: int) -> np.ndarray:
        """Each row's 2-bit state (0..3) for one check, as uint8 per row."""
        if not 0 <= check_index < self.check_count:
            raise IndexError(f"check index {check_index} out of range")
        byte = check_index >> 2
        shift = 6 - 2 * (check_index & 3)
        col = self._bytes[byte // self.chunk_bytes, : self.n_rows, byte % self.chunk_bytes]
        return (col >> shift) & 0x3


def lane_of(check_index: np.ndarray | int, lane_words: int) -> np.ndarray:
    """Lane position of each check index (see the module docstring)."""
    i = np.asarray(check_index, dtype=np.int64)
    # Check i = 32w + 4j + 2*q2 + q1 lands in word (q1, q2, w), byte j.
    w, j, q2, q1 = i >> 5, (i >> 2) & 7, (i >> 1) & 1, i & 1
    return ((q1 * 2 + q2) * lane_words + w) * 8 + j


def to_check_order(lanes: np.ndarray, check_count: int) -> np.ndarray:
    """A new array in check order from a per-lane array of 32 * lane_words items."""
    nw = lanes.size // 32
    return np.ascontiguousarray(
        lanes.reshape(2, 2, nw, 8).transpose(2, 3, 1, 0).reshape(-1)[:check_count])


def to_lane_order(values: np.ndarray, lane_words: int, fill: int = 0) -> np.ndarray:
    """Inverse of to_check_order: per-check values spread over all lanes."""
    full = np.full(32 * lane_words, fill, dtype=values.dtype)
    full[: values.size] = values
    return np.ascontiguousarray(full.reshape(lane_words, 8, 2, 2).transpose(3, 2, 0, 1)
                                .reshape(-1))


class VoteCounter:
    """Counts healthy and unhealthy votes per check over the fresh rows.

    Built for one SlotMatrix geometry; reuses its scratch buffers on every
    call, so a count allocates only its two result arrays.

    How: a uint64 word of a row holds 32 checks as 2-bit lanes. Masking
    gives a healthy plane (low bit of each pair) and an unhealthy plane (high
    bit, shifted down). Three rows add up in 2-bit lanes without overflow;
    splitting even and odd lanes widens them to 4 bits, where five such sums
    fit; splitting again widens to 8 bits, where up to 17 more fit (255
    rows). Each step is one numpy call over the whole block of rows for a
    chunk of words, so the Python overhead is a few dozen calls per chunk
    whatever the number of checkers. More than 255 rows are counted in
    batches of 255 and summed in uint16.
    """

    def __init__(self, slots: SlotMatrix) -> None:
        self.geometry = (slots.n_chunks, slots.rows_padded, slots.chunk_words)
        self.n_rows = slots.n_rows
        self.lane_words = slots.lane_words
        c = slots.chunk_words
        self.batches = [(r, min(r + BATCH_ROWS, slots.rows_padded))
                        for r in range(0, slots.rows_padded, BATCH_ROWS)]
        self.count_dtype = np.uint8 if len(self.batches) == 1 else np.uint16
        self._bufs: dict[int, tuple[np.ndarray, ...]] = {}
        for lo, hi in self.batches:
            rows = hi - lo
            if rows in self._bufs:
                continue
            m = rows // 3
            m5 = _ceil_div(m, FOLD4)
            self._bufs[rows] = (
                np.empty((2, rows, c), np.uint64),               # planes
                np.empty((2, m, c), np.uint64),                  # 2-bit sums
                np.empty((2, m, c), np.uint64),                  # shift scratch
                np.zeros((2, 2, m5 * FOLD4, c), np.uint64),      # 4-bit lanes; [m:] stay 0
                np.empty((2, 2, m5, c), np.uint64),              # 4-bit sums
                np.empty((2, 2, 2, m5, c), np.uint64),           # 8-bit lanes
                np.empty((2, 2, m5, c), np.uint64),              # shift scratch
            )
        self._mask = np.empty((slots.rows_padded, 1), np.uint64)
        self._batch_out = (np.empty((2, 2, 2, self.lane_words), np.uint64)
                           if len(self.batches) > 1 else None)

    def count(self, slots: SlotMatrix, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(healthy, unhealthy) vote counts per lane over rows where fresh is true.

        Both are new arrays of 32 * lane_words items in lane order, uint8 for
        up to 255 rows, else uint16.
        """
        if (slots.n_chunks, slots.rows_padded, slots.chunk_words) != self.geometry:
            raise ValueError("slot matrix geometry does not match this counter")
        fresh = np.asarray(fresh, dtype=bool)
        if fresh.shape != (self.n_rows,):
            raise ValueError(f"fresh must have one entry per row ({self.n_rows})")
        # Always the per-row mask, even when every row is fresh: a scalar
        # mask is about 10 % faster, but then a checker going stale would
        # make the tick slower, and its cost must not depend on events.
        self._mask.fill(_ZERO)
        self._mask[: self.n_rows, 0] = np.where(fresh, _M1, _ZERO)
        mask = self._mask
        nw = self.lane_words
        out = np.empty((2, 2, 2, nw), np.uint64)
        if len(self.batches) == 1:
            self._count_batch(slots, 0, slots.rows_padded, mask, out)
            lanes = out.view(np.uint8).reshape(2, -1)
            return lanes[0], lanes[1]
        total = np.zeros((2, 32 * nw), np.uint16)
        assert self._batch_out is not None  # made whenever there is more than one batch
        for lo, hi in self.batches:
            self._count_batch(slots, lo, hi, mask[lo:hi], self._batch_out)
            total += self._batch_out.view(np.uint8).reshape(2, -1)
        return total[0], total[1]

    def _count_batch(self, slots: SlotMatrix, lo: int, hi: int,
                     mask: np.ndarray, out: np.ndarray) -> None:
        rows = hi - lo
        planes, s2, t2, l4, s4, l8, t4 = self._bufs[rows]
        c = slots.chunk_words
        m = rows // 3
        g3 = planes.reshape(2, m, 3, c)
        g5 = l4.reshape(2, 2, l4.shape[2] // FOLD4, FOLD4, c)
        band, shr, add = np.bitwise_and, np.right_shift, np.add
        for k in range(slots.n_chunks):
            block = slots.words[k, lo:hi]
            # Planes: healthy = low bit of each pair, unhealthy = high bit.
            band(block, mask, out=planes[0])
            shr(block, 1, out=planes[1])
            band(planes[1], mask, out=planes[1])
            # 2-bit lanes: three rows at a time (max 3).
            add(g3[:, :, 0], g3[:, :, 1], out=s2)
            add(s2, g3[:, :, 2], out=s2)
            # 4-bit lanes: index 1 holds even lanes, 0 odd, so that the
            # lane-to-check map stays a plain reshape (see lane_of).
            band(s2, _M2, out=l4[:, 1, :m])
            shr(s2, 2, out=t2)
            band(t2, _M2, out=l4[:, 0, :m])
            np.add.reduce(g5, axis=3, out=s4)                  # five at a time (max 15)
            # 8-bit lanes, then every group summed (max 17 * 15 = 255).
            band(s4, _M4, out=l8[:, :, 1])
            shr(s4, 4, out=t4)
            band(t4, _M4, out=l8[:, :, 0])
            np.add.reduce(l8, axis=3, out=out[:, :, :, k * c:(k + 1) * c])
