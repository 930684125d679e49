"""The ``healthplane`` console script: one subcommand per component.

Each subcommand lives in its own module, imported only when chosen, so
``healthplane validate`` never pays for importing the checker's probes and
the checker never imports the aggregator. A subcommand module exposes
``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys

from healthplane import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "checker": ("healthplane.checker.cli", "run one checker of a fleet"),
    "aggregator": ("healthplane.aggregator.cli",
                   "run one aggregator (Ingest and Health gRPC services)"),
    "dns": ("healthplane.aggregator.dns.cli",
            "serve a health-aware DNS zone from aggregator snapshots"),
    "pdns-backend": ("healthplane.aggregator.dns.pdns_cli",
                     "answer PowerDNS's remote backend from aggregator snapshots"),
    "validate": ("healthplane.proto.validate_cli", "check checks.yaml, fleet.yaml and zone.yaml"),
    "query": ("healthplane.aggregator.query_cli", "show the health of checks from an aggregator"),
    "demo": ("healthplane.deploy.demo", "run a whole fleet on loopback with a live view"),
    "certs": ("healthplane.certs", "write a development CA and certificates for a fleet"),
}


def _usage() -> str:
    lines = ["usage: healthplane COMMAND [ARGS...]", "       healthplane --version",
             "", "commands:"]
    width = max(len(name) for name in COMMANDS)
    for name, (_, summary) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {summary}")
    lines.append(f"  {'version':<{width}}  print the version")
    lines.append("")
    lines.append("Run 'healthplane COMMAND --help' for the options of one command.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name in ("--version", "-V", "version"):
        print(f"healthplane {__version__}")
        return 0
    if name not in COMMANDS:
        print(f"healthplane: unknown command {name!r}", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
