"""Structured logs for the checker: logfmt (default) or JSON lines on stderr.

Quiet by default (warnings and errors only); ``-v`` adds state changes and
reloads, ``-vv`` debug detail.
"""

from __future__ import annotations

import json
import logging
import sys
import time


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\\\n'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ts += f".{int(record.msecs):03d}Z"
        return f"ts={ts} level={record.levelname.lower()} msg={_quote(record.getMessage())}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"ts": round(record.created, 3), "level": record.levelname.lower(),
                           "logger": record.name, "msg": record.getMessage()})


def setup(verbosity: int, fmt: str = "logfmt") -> None:
    """Send healthplane logs to stderr at a level set by the -v count."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 \
        else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    logger = logging.getLogger("healthplane")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
