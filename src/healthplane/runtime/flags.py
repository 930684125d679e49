"""Command-line flag types every component shares."""

from __future__ import annotations

import argparse

# The shortest period between reload attempts: each fingerprints every
# watched file, so a period of a millisecond would spin a core on stat().
MIN_RELOAD_PERIOD = 0.1


def reload_period(text: str) -> float:
    """argparse type of --reload-period: 0 (only on SIGHUP) or at least 0.1 s."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value == 0 or MIN_RELOAD_PERIOD <= value < float("inf")):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 0 (reload only on SIGHUP) or a period of at least "
            f"{MIN_RELOAD_PERIOD:g} s")
    return value
