"""Reading operator files with bounds: regular files only, never blocking, never huge.

Every configuration file (checks, fleet, zone; later certificates) is read
here, at start, by ``validate``, on reload and for the reload fingerprint,
so a hostile path behaves the same everywhere:

* the file is opened with ``O_NONBLOCK``, so a FIFO (or a device) never
  blocks the open, and the open descriptor is ``fstat``-ed: anything but a
  regular file is refused (``/dev/zero`` would otherwise be read forever);
* the size is checked before a byte is read, and the read stops one byte
  past the cap, so a file that grows while it is read is refused too;
* a fingerprint never holds a whole file: it hashes the file in chunks, and
  only when its identity (device, inode, size, mtime, ctime) changed since
  the last fingerprint.

Errors are :class:`UnreadableFile`, whose message is one line naming the path.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

# A million checks is about 150 MiB of YAML or JSON.
MAX_CONFIG_BYTES = 256 << 20
_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)

__all__ = ["MAX_CONFIG_BYTES", "Fingerprint", "UnreadableFile", "read_bounded"]


class UnreadableFile(Exception):
    """A file that cannot be used: missing, not regular, too large, unreadable."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "cannot read: is a directory"
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "something else")
    return f"cannot read: is {kind}, not a regular file"


def _too_large(limit: int) -> str:
    size = f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"
    return f"larger than {size}; is it the right file?"


def _open(path: str | Path, limit: int) -> tuple[int, os.stat_result]:
    """An open descriptor of a regular file no larger than limit, and its stat."""
    name = str(path)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise UnreadableFile(name, f"cannot read: {(exc.strerror or str(exc)).lower()}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(name, _not_regular(st.st_mode))
        if st.st_size > limit:
            raise UnreadableFile(name, _too_large(limit))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _chunks(fd: int, name: str, limit: int) -> Iterator[bytes]:
    """The file's bytes in chunks; UnreadableFile once more than limit were read."""
    total = 0
    while True:
        try:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
        except OSError as exc:
            raise UnreadableFile(name, f"cannot read: {(exc.strerror or str(exc)).lower()}"
                                 ) from None
        if not chunk:
            return
        total += len(chunk)
        if total > limit:
            raise UnreadableFile(name, _too_large(limit))
        yield chunk


def read_bounded(path: str | Path, limit: int = MAX_CONFIG_BYTES) -> bytearray:
    """The bytes of a regular file of at most limit bytes."""
    fd, st = _open(path, limit)
    try:
        data = bytearray()
        for chunk in _chunks(fd, str(path), limit):
            data += chunk
        return data
    finally:
        os.close(fd)


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Fingerprint:
    """A digest of some files' contents, cheap to take again and again.

    Calling it returns 16 bytes that change when any file's bytes change.
    A file whose identity (device, inode, size, mtime, ctime) is the same as
    at the previous call is not read again; otherwise it is hashed in
    chunks, bounded like :func:`read_bounded`. Raises UnreadableFile.
    """

    def __init__(self, paths: Sequence[str | Path], limit: int = MAX_CONFIG_BYTES) -> None:
        self.paths = tuple(str(p) for p in paths)
        self.limit = limit
        self._known: dict[str, tuple[tuple[int, ...], bytes]] = {}

    def _digest(self, path: str) -> bytes:
        fd, st = _open(path, self.limit)
        try:
            identity = _identity(st)
            known = self._known.get(path)
            if known is not None and known[0] == identity:
                return known[1]
            h = hashlib.blake2b(digest_size=16)
            for chunk in _chunks(fd, path, self.limit):
                h.update(chunk)
            digest = h.digest()
        finally:
            os.close(fd)
        self._known[path] = (identity, digest)
        return digest

    def __call__(self) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for path in self.paths:
            h.update(self._digest(path))
        return h.digest()
