"""Compiled hot paths, each with its pure-Python fallback, chosen once at start.

The package's own build compiles the C extensions listed in ``setup.py``
when a compiler is there; each is optional, so an install without one still
works, on the Python paths. ``HEALTHPLANE_PURE_PYTHON=1`` forces every
fallback (CI runs the path-dependent tests both ways). Components log which
path they run, so an operator can tell from the first lines of a log.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

ENV = "HEALTHPLANE_PURE_PYTHON"


def pure_python() -> bool:
    """Whether the environment forces the pure-Python paths."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def load(module: str) -> ModuleType | None:
    """The compiled module, or None when forced off or not built."""
    if pure_python():
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def path_name(mod: ModuleType | None) -> str:
    """"compiled" or "python", for the start-up log line and metrics."""
    return "python" if mod is None else "compiled"
