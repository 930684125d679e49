"""Give the C heap's free pages back to the kernel after a burst of garbage.

Loading a configuration makes far more short-lived objects than the
result keeps (a YAML parse of 50,000 checks peaks at tens of megabytes for
a registry of a few). CPython frees them, but glibc keeps freed heap pages
that sit below live ones, so the process's resident size stays near the
peak for as long as it runs. ``malloc_trim`` hands whole free pages back;
on a C library without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import lru_cache

__all__ = ["release_free_memory"]


@lru_cache(maxsize=1)
def _trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        # Not glibc's usual name; find_library runs ldconfig in a subprocess.
        try:
            trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
        except (OSError, AttributeError, TypeError):
            return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Collect garbage cycles (a parse leaves many), then return free heap
    pages to the kernel; False when the C library cannot."""
    gc.collect()
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
