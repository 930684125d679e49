"""Keep client-chosen bytes out of the logs, and tracebacks with them.

grpcio logs some failures of its server loop with the exception's text and a
traceback, and asyncio logs the exceptions of tasks nobody awaited (grpc's
own included) the same way. That text can carry what a client sent (a
malformed request path, say) verbatim: line breaks and terminal escapes
forge log lines. :func:`sanitize_grpc_logs` turns every record of those
loggers into one escaped, length-capped line without a traceback, and
:func:`loop_exception_handler` does the same for asyncio's handler.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

# Loggers whose records may quote what a peer sent.
_LOGGERS = ("grpc", "grpc._cython.cygrpc", "grpc._server", "grpc.aio", "grpc._common")
LIMIT = 300


def escape(text: str, limit: int = LIMIT) -> str:
    """Printable ASCII as is, everything else as a \\x / \\u escape; cut at limit."""
    out = text.encode("ascii", "backslashreplace").decode("ascii")
    out = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in out)
    return out if len(out) <= limit else out[:limit] + "..."


def _summary(exc: BaseException | None) -> str:
    return "" if exc is None else f": {type(exc).__name__}: {escape(str(exc))}"


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            text = str(record.msg)
        record.msg = escape(text) + ("" if exc is None or str(exc) in text else _summary(exc))
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


_FILTER = _OneLine()


def sanitize_grpc_logs() -> None:
    """Install the one-line filter on grpc's loggers (idempotent)."""
    for name in (*_LOGGERS, "asyncio"):
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's last-resort handler, one escaped line instead of a traceback."""
    exc = context.get("exception")
    message = context.get("message", "unhandled error in the event loop")
    logging.getLogger("healthplane.runtime").error("%s%s", escape(str(message)), _summary(exc))
