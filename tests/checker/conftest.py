"""Fixtures shared by the checker tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from healthplane.checker.probes import engine


@pytest.fixture(params=["compiled", "python"])
def probe_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on the compiled probe engine, then on the pure-Python probers.

    Probers built while it is active take that path (the dispatcher batches
    the engine's). The compiled run is skipped when the engine is not built
    (or HEALTHPLANE_PURE_PYTHON=1); with CI=true test_engine_built fails then.
    """
    if request.param == "compiled" and engine.COMPILED is None:
        pytest.skip("the compiled probe engine is not built")
    saved = engine.engine
    engine.engine = engine.COMPILED if request.param == "compiled" else None
    try:
        yield request.param
    finally:
        engine.engine = saved
