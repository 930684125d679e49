"""Reconnect delays: capped exponential backoff with full jitter, as a pure function."""

from __future__ import annotations

import random

# The shortest delay backoff() returns (unless the cap is smaller). Full
# jitter draws from (0, upper], and a draw near zero would let a client
# reconnect at once, in a tight loop against a dead peer, and let every
# client of a restarting server land on it at the same instant; 10 ms is far
# below any base in use, so it never shapes the distribution otherwise.
MIN_DELAY = 0.01


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay in seconds before reconnect attempt ``attempt`` (0, 1, 2, ...).

    Uniform in (0, min(cap, base * 2**attempt)] ("full jitter", so a fleet
    that lost its peer at once spreads its retries), then clamped to at least
    MIN_DELAY (or the cap, if that is smaller). Never zero, never above cap.
    Raises ValueError unless base and cap are > 0.
    """
    if not base > 0 or not cap > 0:
        raise ValueError("base and cap must be > 0")
    upper = min(cap, base * 2.0 ** min(max(attempt, 0), 64))
    # 1 - random() lies in (0, 1]: the draw itself cannot be zero.
    return max(upper * (1.0 - rng.random()), min(MIN_DELAY, upper))
