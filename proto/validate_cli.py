"""``healthplane validate checks.yaml [--fleet F] [--zone Z]``.

Exit 0 with a one-line summary when every file given is valid, else every
problem on stderr, one per line, and exit 1. Usage errors exit 2. Files are
read as the components read them (regular files only, bounded, never
blocking), so a FIFO or a device is one line here too, not a hang.
With --fleet, checks that can never reach their quorum are warned about on
stderr (``warning: ...``), without changing the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from healthplane.proto.config.errors import ConfigError
from healthplane.proto.config.loader import load_config
from healthplane.proto.config.model import CHECK_TYPES, Fleet, Registry, Zone

from healthplane.runtime.logs import add_log_flags, setup_from_args


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(registry: Registry, fleet: Fleet | None, zone: Zone | None) -> str:
    """One line: checks per type, fleet size, records, registry version."""
    counts: Counter[str] = Counter(registry.column("type"))
    by_type = ", ".join(f"{t} {counts[t]}" for t in CHECK_TYPES if counts[t])
    parts = [_plural(registry.check_count, "check") + (f" ({by_type})" if by_type else "")]
    if fleet is not None:
        parts.append(f"{_plural(len(fleet.checker_ids), 'checker')} in "
                     f"{_plural(len(fleet.regions), 'region')}")
    if zone is not None:
        parts.append(f"{_plural(len(zone.records), 'record')} in {zone.zone}")
    return f"ok: {', '.join(parts)}; registry version {registry.version}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="healthplane validate",
        description="Check checks.yaml, and optionally fleet.yaml and zone.yaml, "
                    "including the rules between them.")
    parser.add_argument("checks", help="the check registry (checks.yaml, or checks.json)")
    parser.add_argument("--fleet", metavar="FLEET_YAML",
                        help="fleet.yaml: also check regions and the private-target policy")
    parser.add_argument("--zone", metavar="ZONE_YAML",
                        help="zone.yaml: also check that record checks exist")
    parser.add_argument("--max-errors", metavar="N", type=int, default=1000,
                        help="print at most N errors, then a count of the rest "
                             "(default 1000; 0 prints all)")
    add_log_flags(parser, default="warning")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_from_args(args)
    try:
        registry, fleet, zone = load_config(args.checks, args.fleet, args.zone)
    except ConfigError as exc:
        shown = exc.errors if args.max_errors <= 0 else exc.errors[:args.max_errors]
        for line in shown:
            print(line, file=sys.stderr)
        if len(shown) < len(exc.errors):
            print(f"... and {len(exc.errors) - len(shown)} more errors "
                  "(--max-errors 0 shows all)", file=sys.stderr)
        return 1
    if fleet is not None:
        from healthplane.proto.config.quorum import quorum_warnings
        warnings = quorum_warnings(registry, fleet)
        limit = len(warnings) if args.max_errors <= 0 else args.max_errors
        for line in warnings[:limit]:
            print(f"warning: {line}", file=sys.stderr)
        if len(warnings) > limit:
            print(f"warning: ... and {len(warnings) - limit} more checks that can never "
                  "reach their quorum", file=sys.stderr)
    print(summary(registry, fleet, zone))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
