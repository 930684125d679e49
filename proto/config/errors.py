"""The one error type every config loader raises."""

from __future__ import annotations


class ConfigError(Exception):
    """One or more problems found in configuration files.

    Each entry of ``errors`` is one complete line for the operator, in the
    form ``FILE:LINE: FIELD.PATH: what is wrong``, e.g.
    ``checks.yaml:12: checks[3].timeout: must be <= interval (10)``.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)
