"""Structured logs for every command: logfmt (default) or JSON lines on stderr.

Fields travel as real fields, never inside the message text::

    log.info("state changed", extra={"check": cid, "state": "unhealthy"})
    # ts=2026-01-02T03:04:05.678Z level=info logger=healthplane.checker
    #   msg="state changed" check=web-1 state=unhealthy

or bound once with :func:`bind`. Values are escaped, and that matters:
check ids, peer addresses and error texts can come from outside, and a value
holding a newline, a quote or a control character must never be able to
forge a second log line or a field. In logfmt a value is written bare only
when it holds nothing but printable non-space characters other than
``"``, ``=`` and ``\\``; anything else is quoted, with every control or
non-printable character written as an escape. JSON lines are escaped by the
json module (ASCII only).

:func:`setup` installs one handler on the root logger, so the records of
grpc's and asyncio's loggers (and Python warnings) come out in the same
format. :func:`add_log_flags` and :func:`setup_from_args` give every
subcommand the same ``--log-level`` and ``--log-format``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import IO, Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("logfmt", "json")

# Attributes every LogRecord has; anything else on a record came in `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}
# Names the formatters write themselves; an extra field of the same name is
# written with a trailing underscore instead of shadowing them.
_OWN = frozenset({"ts", "level", "logger", "msg", "exc"})
_SPECIAL = frozenset(' "=\\')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    if c.isprintable():
        return c
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else (
        f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def logfmt_value(value: object) -> str:
    """value as one logfmt token: bare when safe, else quoted with escapes."""
    text = value if isinstance(value, str) else str(value)
    if text and all(c.isprintable() and c not in _SPECIAL for c in text):
        return text
    return '"' + "".join(_escape_char(c) for c in text) + '"'


def logfmt_key(key: str) -> str:
    """A field name made safe: anything but [A-Za-z0-9_.-] becomes '_'."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in key)
    return safe or "_"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The extra fields of a record (what came in ``extra=``), in insertion order."""
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        out[key + "_" if key in _OWN else key] = value
    return out


def _timestamp(record: logging.LogRecord) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{ts}.{int(record.msecs):03d}Z"


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg=… field=value …`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={_timestamp(record)}", f"level={record.levelname.lower()}",
                 f"logger={logfmt_value(record.name)}", f"msg={logfmt_value(record.getMessage())}"]
        for key, value in fields_of(record).items():
            parts.append(f"{logfmt_key(key)}={logfmt_value(value)}")
        exc = self._exception(record)
        if exc:
            parts.append(f"exc={logfmt_value(exc)}")
        return " ".join(parts)

    def _exception(self, record: logging.LogRecord) -> str:
        text = self.formatException(record.exc_info) if record.exc_info else ""
        if record.stack_info:
            text = (text + "\n" if text else "") + self.formatStack(record.stack_info)
        return text


class JsonFormatter(LogfmtFormatter):
    """One JSON object per line with the same fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        doc.update(fields_of(record))
        exc = self._exception(record)
        if exc:
            doc["exc"] = exc
        return json.dumps(doc, default=str, ensure_ascii=True)


class _Handler(logging.StreamHandler):
    """Marks the handler setup() installed, so a second setup() replaces it."""


def setup(level: str = "info", fmt: str = "logfmt", stream: IO[str] | None = None) -> None:
    """Send every log record (healthplane's, grpc's, asyncio's) to stream (default stderr)."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Loggers below inherit the root's level and handler.
    logging.getLogger("healthplane").setLevel(logging.NOTSET)
    logging.captureWarnings(True)


class FieldsAdapter(logging.LoggerAdapter):
    """A logger that adds the same fields to every record (see :func:`bind`)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]
                ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def bind(logger: logging.Logger, **fields: Any) -> FieldsAdapter:
    """logger, with fields added to every record it logs (call-site extras win)."""
    return FieldsAdapter(logger, fields)


def add_log_flags(parser: argparse.ArgumentParser, *, default: str = "info",
                  verbose_alias: bool = False) -> None:
    """Add --log-level and --log-format (and, where it existed, -v) to parser."""
    group = parser.add_argument_group("logging")
    group.add_argument("--log-level", type=str.lower, choices=LEVELS, default=None,
                       help=f"least severe level logged (default {default})")
    group.add_argument("--log-format", type=str.lower, choices=FORMATS, default="logfmt",
                       help="logfmt lines or JSON lines on stderr (default logfmt)")
    if verbose_alias:
        group.add_argument("-v", "--verbose", action="count", default=0,
                           help="shorthand: -v is --log-level info, -vv debug")
    parser.set_defaults(log_level_default=default)


def level_from_args(args: argparse.Namespace) -> str:
    """The level the flags ask for: --log-level, else the -v count, else the default."""
    if args.log_level is not None:
        return str(args.log_level)
    verbose = int(getattr(args, "verbose", 0) or 0)
    if verbose:
        return "debug" if verbose >= 2 else "info"
    return str(getattr(args, "log_level_default", "info"))


def setup_from_args(args: argparse.Namespace, stream: IO[str] | None = None) -> None:
    """setup() as the flags added by add_log_flags() ask."""
    setup(level_from_args(args), args.log_format, stream)

