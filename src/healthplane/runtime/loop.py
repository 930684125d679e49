"""The event loop every long-running command runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_event_loop(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's main coroutine on uvloop when installed, else asyncio.

    uvloop is optional: every component works on the standard loop, only
    with more CPU per connection.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
