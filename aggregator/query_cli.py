"""``healthplane query --aggregator HOST:PORT [CHECK_ID ...]``: a readable health table.

Prints one line per check (status, healthy/reporting votes, last change) and,
with ``--checkers``, one line per checker under each check (region, vote,
snapshot age, and the checker's latest probe of the check: its reason,
latency and age, when the aggregator has it). Exit 0 on success; 1 with a
one-line error on stderr when the aggregator cannot be reached within the
deadline or an id is unknown; 2 for usage errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from healthplane.aggregator.client import AggregatorClient, AggregatorError
from healthplane.aggregator.health_service import DETAIL_LIMIT
from healthplane.proto.codec import state_name
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

from healthplane.runtime.listen import parse_hostport
from healthplane.runtime.logs import add_log_flags, setup_from_args

PROG = "healthplane query"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Show the health of checks as an "
                                "aggregator sees them.")
    p.add_argument("--aggregator", required=True, metavar="HOST:PORT",
                   help="the aggregator's gRPC address")
    p.add_argument("check_ids", nargs="*", metavar="CHECK_ID",
                   help="checks to show (default: every check)")
    p.add_argument("--checkers", action="store_true",
                   help="also show every checker's vote, snapshot age and latest probe "
                   "(reason, latency) per check")
    p.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                   help="give up after this long (default 3)")
    add_log_flags(p, default="warning")
    return p


def _when(unix_ms: int, now: float) -> str:
    if unix_ms <= 0:
        return "never"
    t = dt.datetime.fromtimestamp(unix_ms / 1000, tz=dt.UTC)
    ago = max(0.0, now - unix_ms / 1000)
    return f"{t:%Y-%m-%d %H:%M:%S}Z ({_age(ago * 1000)} ago)"


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


def _why(v: pb.CheckerVote) -> str:
    """The checker's latest probe of the check: "refused 1.2ms (4.0s ago)"; "" unknown."""
    if v.detail_age_ms < 0 or not v.reason:
        return ""
    return f"{v.reason} {v.latency_ms:.1f}ms ({_age(v.detail_age_ms)} ago)"


def render(resp: pb.QueryResponse, checkers: bool, now: float | None = None) -> str:
    """The table printed for a QueryResponse."""
    now = time.time() if now is None else now
    rows = [("CHECK", "STATUS", "VOTES", "LAST CHANGE")]
    detail: dict[int, list[tuple[str, ...]]] = {}
    for ch in resp.checks:
        rows.append((ch.check_id, state_name(ch.status),
                     f"{ch.healthy_votes}/{ch.reporting_votes}",
                     _when(ch.last_change_unix_ms, now)))
        if checkers:
            detail[len(rows) - 1] = [
                (v.checker_id, v.region, state_name(v.vote),
                 "never reported" if v.snapshot_age_ms < 0 else
                 f"snapshot {_age(v.snapshot_age_ms)} old", _why(v))
                for v in ch.checkers]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    out = [f"registry {resp.registry_version}  tick {resp.sequence}"
           + ("  (warming up: not yet heard from every checker)" if resp.warming else "")]
    for n, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
        sub = detail.get(n, [])
        if sub:
            sw = [max(len(s[i]) for s in sub) for i in range(4)]
            for s in sub:
                line = "    " + "  ".join(c.ljust(w) for c, w in zip(s[:3], sw[:3], strict=True))
                line += "  " + (s[3].ljust(sw[3]) + "  " + s[4] if s[4] else s[3])
                out.append(line)
    return "\n".join(out)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_from_args(args)
    try:
        parse_hostport(args.aggregator)
    except ValueError as exc:
        print(f"{PROG}: --aggregator: {exc}", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print(f"{PROG}: --timeout must be > 0", file=sys.stderr)
        return 2
    try:
        with AggregatorClient(args.aggregator, timeout=args.timeout) as client:
            resp = client.query(args.check_ids)
    except AggregatorError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(render(resp, args.checkers))
    if args.checkers and resp.checks and not any(ch.checkers for ch in resp.checks):
        print(f"{PROG}: no per-checker detail: the aggregator gives it for at most "
              f"{DETAIL_LIMIT} checks at a time; name fewer", file=sys.stderr)
    return 0
