"""Run one async scenario on the default event loop or on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvloop

T = TypeVar("T")
LOOPS = ("asyncio", "uvloop")


def run_on(loop: str, scenario: Callable[[], Awaitable[T]]) -> T:
    """scenario() to completion on a fresh loop of the named kind."""
    if loop == "uvloop":
        return uvloop.run(scenario())  # type: ignore[arg-type]
    return asyncio.run(scenario())  # type: ignore[arg-type]
