"""``healthplane query --aggregator HOST:PORT [CHECK_ID ...]``: the health of checks.

Prints one line per check (status, healthy/reporting votes, last change as
ISO 8601 UTC and its age) and, with ``--checkers``, one line per checker
under each check (region, vote, snapshot age, and the checker's latest probe
of the check: its reason, latency and age, when the aggregator has it).
Every field is one word (a reason's spaces become ``_``), so
``awk '{print $1, $2}'`` works; "never" and "-" stand for no value.

``--json`` prints one JSON document instead (design.md's contract)::

    {"registry_version": "...", "sequence": 53, "checks": [{"id": "web-1",
     "status": "healthy", "healthy_votes": 3, "reporting_votes": 3,
     "last_change_unix_ms": 0, "checkers": [{"id": "use1-a", "region":
     "us-east", "vote": "healthy", "snapshot_age_ms": 412, "reason": "ok",
     "latency_ms": 1.9}]}]}

Exit status: 0 when every named check is healthy (or none was named), 2 when
a named check is not healthy, 1 on an error (an unreachable aggregator, an
unknown id, bad arguments), with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from healthplane.aggregator.client import AggregatorClient, AggregatorError
from healthplane.aggregator.health_service import DETAIL_LIMIT
from healthplane.aggregator.query_json import query_document
from healthplane.proto.codec import state_name
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

from healthplane.runtime.listen import parse_hostport
from healthplane.runtime.logs import add_log_flags, setup_from_args
from healthplane.runtime.tls import TlsError, add_tls_arguments, tls_from_args, tls_usage_error

PROG = "healthplane query"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:   # exit 2 means "not healthy" here
        print(f"{PROG}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(1)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Show the health of checks as an aggregator sees "
                "them. Exit 0: every named check healthy (or none named); 2: a named "
                "check not healthy; 1: an error.")
    p.add_argument("--aggregator", required=True, metavar="HOST:PORT",
                   help="the aggregator's gRPC address")
    p.add_argument("check_ids", nargs="*", metavar="CHECK_ID",
                   help="checks to show (default: every check)")
    p.add_argument("--checkers", action="store_true",
                   help="also show every checker's vote, snapshot age and latest probe "
                   "(reason, latency) per check")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (every check's votes and its checkers)")
    p.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                   help="give up after this long (default 3)")
    add_log_flags(p, default="warning")
    add_tls_arguments(p)
    return p


def _when(unix_ms: int) -> str:
    if unix_ms <= 0:
        return "never"
    t = dt.datetime.fromtimestamp(unix_ms / 1000, tz=dt.UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}Z"


def _ago(unix_ms: int, now: float) -> str:
    return "-" if unix_ms <= 0 else _age(max(0.0, now - unix_ms / 1000) * 1000)


def _age(ms: float) -> str:
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    whole = int(s)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _columns(rows: Sequence[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _why(v: pb.CheckerVote) -> tuple[str, str, str]:
    """The checker's latest probe of the check: (reason, latency, age), one word each."""
    if v.detail_age_ms < 0 or not v.reason.strip():
        return "-", "-", "-"
    return (v.reason.strip().replace(" ", "_"), f"{v.latency_ms:.1f}ms",
            _age(v.detail_age_ms))


def render(resp: pb.QueryResponse, checkers: bool, now: float | None = None) -> str:
    """The table printed for a QueryResponse: one word per field."""
    now = time.time() if now is None else now
    rows = [("CHECK", "STATUS", "VOTES", "LAST_CHANGE", "AGO")]
    detail: dict[int, list[tuple[str, ...]]] = {}
    for ch in resp.checks:
        rows.append((ch.check_id, state_name(ch.status),
                     f"{ch.healthy_votes}/{ch.reporting_votes}",
                     _when(ch.last_change_unix_ms), _ago(ch.last_change_unix_ms, now)))
        if checkers and ch.checkers:
            detail[len(rows) - 1] = [
                (v.checker_id, v.region, state_name(v.vote),
                 "-" if v.snapshot_age_ms < 0 else _age(v.snapshot_age_ms), *_why(v))
                for v in ch.checkers]
    lines = _columns(rows)
    out = [f"registry {resp.registry_version}  tick {resp.sequence}"
           + ("  (warming up: not yet heard from every checker)" if resp.warming else ""),
           lines[0]]
    for n, line in enumerate(lines[1:], start=1):
        out.append(line)
        if n in detail:
            out += _columns(detail[n], indent="    ")
    return "\n".join(out)


def exit_status(resp: pb.QueryResponse, named: list[str]) -> int:
    """0 when every named check is healthy (or none was named), else 2."""
    if not named:
        return 0
    return 0 if all(ch.status == pb.STATUS_HEALTHY for ch in resp.checks) else 2


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    setup_from_args(args)
    try:
        parse_hostport(args.aggregator)
    except ValueError as exc:
        print(f"{PROG}: --aggregator: {exc}", file=sys.stderr)
        return 1
    if args.timeout <= 0:
        print(f"{PROG}: --timeout must be > 0", file=sys.stderr)
        return 1
    if err := tls_usage_error(args):
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    try:
        tls = tls_from_args(args)
    except TlsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    try:
        with AggregatorClient(args.aggregator, timeout=args.timeout, tls=tls) as client:
            resp = client.query(args.check_ids)
    except AggregatorError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(query_document(resp), sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
    else:
        print(render(resp, args.checkers))
        if args.checkers and resp.checks and not any(ch.checkers for ch in resp.checks):
            print(f"{PROG}: no per-checker detail: the aggregator gives it for at most "
                  f"{DETAIL_LIMIT} checks at a time; name fewer", file=sys.stderr)
    sys.stdout.flush()
    return exit_status(resp, args.check_ids)
