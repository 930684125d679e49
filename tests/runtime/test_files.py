"""Bounded, non-blocking reads: regular files only, size capped before and while reading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from healthplane.runtime.files import Fingerprint, UnreadableFile, read_bounded

pytestmark = pytest.mark.timeout(10)


def test_a_regular_file_is_read_whole(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_bytes(b"checks: []\n")
    assert read_bounded(path) == b"checks: []\n"
    assert read_bounded(path, limit=11) == b"checks: []\n"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "checks.yaml"
    os.mkfifo(path)                      # nobody ever writes: a plain open would hang
    with pytest.raises(UnreadableFile) as info:
        read_bounded(path)
    assert str(info.value) == f"{path}: cannot read: is a FIFO, not a regular file"
    with pytest.raises(UnreadableFile, match="is a FIFO"):
        Fingerprint([path])()


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"),
                                            ("/dev/null", "a character device")])
def test_devices_are_refused(path, kind):
    with pytest.raises(UnreadableFile) as info:
        read_bounded(path)
    assert str(info.value) == f"{path}: cannot read: is {kind}, not a regular file"


def test_a_directory_and_a_missing_file_are_one_line(tmp_path):
    with pytest.raises(UnreadableFile) as info:
        read_bounded(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read: is a directory"
    with pytest.raises(UnreadableFile) as info:
        read_bounded(tmp_path / "nope")
    assert str(info.value) == f"{tmp_path / 'nope'}: cannot read: no such file or directory"


def test_the_size_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:
        f.truncate(1536 << 20)           # sparse
    with pytest.raises(UnreadableFile) as info:
        read_bounded(path)
    assert str(info.value) == f"{path}: larger than 256 MiB; is it the right file?"
    with pytest.raises(UnreadableFile, match="larger than 256 MiB"):
        Fingerprint([path])()


def test_a_file_that_holds_more_than_its_size_says_is_bounded_while_reading():
    # /proc files say they are empty and are not: like a file that grows
    # after it was measured.
    assert os.stat("/proc/self/maps").st_size == 0
    with pytest.raises(UnreadableFile) as info:
        read_bounded("/proc/self/maps", limit=64)
    assert str(info.value) == "/proc/self/maps: larger than 64 bytes; is it the right file?"
    with pytest.raises(UnreadableFile, match="larger than 64 bytes"):
        Fingerprint(["/proc/self/maps"], limit=64)()


def test_the_fingerprint_follows_the_contents(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("one")
    b.write_text("two")
    fingerprint = Fingerprint([a, b])
    first = fingerprint()
    assert fingerprint() == first
    assert Fingerprint([b, a])() != first            # order is part of it
    a.write_text("uno")
    changed = fingerprint()
    assert changed != first
    a.write_text("one")
    assert fingerprint() == first                     # contents, not times
    replacement = tmp_path / "a.new"
    replacement.write_text("one")
    os.replace(replacement, a)                        # a new inode, same bytes
    assert fingerprint() == first


def test_the_fingerprint_does_not_read_a_file_whose_identity_is_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "checks.yaml"
    path.write_bytes(b"x" * 100_000)
    fingerprint = Fingerprint([path])
    first = fingerprint()
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    assert fingerprint() == first and reads == []
    path.write_bytes(b"y" * 100_000)
    assert fingerprint() != first and reads


def test_symlinks_are_followed(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("checks: []\n")
    link = tmp_path / "checks.yaml"
    link.symlink_to(target)               # as Kubernetes mounts a ConfigMap
    assert read_bounded(Path(link)) == b"checks: []\n"
