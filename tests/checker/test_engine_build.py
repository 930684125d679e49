"""The compiled probe engine is built (in CI), and its path is the one chosen."""

from __future__ import annotations

import importlib
import os

import pytest
from healthplane.checker.probes import engine

from healthplane.runtime import native


@pytest.mark.skipif(os.environ.get("CI", "").lower() != "true", reason="only CI must build it")
def test_engine_built() -> None:
    # Imported directly: HEALTHPLANE_PURE_PYTHON=1 (the CI re-run) must not
    # hide a broken build.
    mod = importlib.import_module("healthplane.checker._engine")
    assert hasattr(mod, "Engine")


def test_path_follows_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.ENV, "1")
    assert native.load("healthplane.checker._engine") is None
    assert engine.path() == native.path_name(engine.engine)
