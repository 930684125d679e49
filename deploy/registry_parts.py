"""Split a checks.yaml into ConfigMaps for Kubernetes, each under the 1 MiB limit.

    python -m healthplane.deploy.registry_parts checks.yaml [--namespace healthplane] > parts.yaml
    kubectl apply -f parts.yaml

A ConfigMap holds at most 1 MiB, a few thousand checks. The registry is cut
at entry boundaries into parts of at most ``--max-bytes`` (default 900 KiB),
one ConfigMap each (``healthplane-checks-00``, ``-01``, ...), and every part
starts with a header line naming its number, the number of parts and a hash
of the whole file::

    # healthplane-registry part=1 of=3 id=5f0c...

The ``registry`` sidecar in the manifests concatenates the parts in order
only when every part is present and carries the same id (kubelet updates
the ConfigMap volumes one by one, so a half-updated set is never assembled),
then validates the result before it replaces the file the components read.

The input must list its checks in block style (one ``- id: ...`` entry per
item, as every example does); a flow-style list is refused with a one-line
error.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from healthplane.proto.config.yamlload import dump_plain_all

HEADER = "# healthplane-registry part={part} of={count} id={id}\n"
HEADER_RE = re.compile(r"^# healthplane-registry part=(\d+) of=(\d+) id=([0-9a-f]+)$")
MAX_PARTS = 8               # the manifests' projected volume lists this many
DEFAULT_MAX_BYTES = 900 * 1024


class SplitError(ValueError):
    """The file cannot be split (one line, names the file)."""


def split(text: str, max_bytes: int = DEFAULT_MAX_BYTES, name: str = "checks.yaml") -> list[str]:
    """The parts of text, each with its header; their concatenation is text plus headers."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"^checks:\s*(#.*)?$", ln)), None)
    if start is None:
        raise SplitError(f"{name}: no block-style 'checks:' line to split at")
    item = next((re.match(r"^(\s*)- ", ln) for ln in lines[start + 1:]
                 if ln.strip() and not ln.lstrip().startswith("#")), None)
    if item is None:
        raise SplitError(f"{name}: 'checks:' is not followed by block-style '- ' entries")
    marker = item.group(1) + "- "
    # Cut points: the first line of every entry; the head (up to the first
    # entry) goes with the first part.
    cuts = [i for i in range(start + 1, len(lines)) if lines[i].startswith(marker)]
    chunks: list[list[str]] = []
    current: list[str] = lines[:cuts[0]]
    size = sum(len(ln.encode()) for ln in current)
    bounds = [*cuts, len(lines)]
    header_room = len(HEADER.format(part=99, count=99, id="0" * 16).encode())
    has_entry = False
    for a, b in zip(bounds, bounds[1:], strict=False):
        entry = lines[a:b]
        n = sum(len(ln.encode()) for ln in entry)
        if n + header_room > max_bytes:
            raise SplitError(f"{name}:{a + 1}: one entry is over {max_bytes} bytes")
        if size + n + header_room > max_bytes and has_entry:
            chunks.append(current)
            current, size = [], 0
        current += entry
        size += n
        has_entry = True
    chunks.append(current)
    if len(chunks) > MAX_PARTS:
        raise SplitError(f"{name}: needs {len(chunks)} parts of {max_bytes} bytes; the "
                         f"manifests mount at most {MAX_PARTS} (raise --max-bytes, or add "
                         "sources to the registry-parts volume)")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return [HEADER.format(part=i, count=len(chunks), id=digest) + "".join(c)
            for i, c in enumerate(chunks)]


def assemble(parts: list[str]) -> str | None:
    """The registry from its parts, or None when the set is incomplete or mixed."""
    seen = []
    for text in parts:
        first, _, rest = text.partition("\n")
        m = HEADER_RE.match(first)
        if m is None:
            return None
        seen.append((int(m.group(1)), int(m.group(2)), m.group(3), rest))
    if not seen or {(c, i) for _, c, i, _ in seen} != {(len(seen), seen[0][2])}:
        return None
    return "".join(rest for _, _, _, rest in sorted(seen))


def configmaps(parts: list[str], namespace: str) -> str:
    docs = [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"healthplane-checks-{i:02d}", "namespace": namespace,
                          "labels": {"app.kubernetes.io/name": "healthplane",
                                     "app.kubernetes.io/component": "registry"}},
             "data": {"checks.yaml": part}} for i, part in enumerate(parts)]
    return dump_plain_all(docs, sort_keys=False, width=1 << 20)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m healthplane.deploy.registry_parts",
                                description="Split checks.yaml into ConfigMaps of under 1 MiB.")
    p.add_argument("checks", help="checks.yaml")
    p.add_argument("--namespace", default="healthplane")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"largest part (default {DEFAULT_MAX_BYTES})")
    args = p.parse_args(argv)
    try:
        text = Path(args.checks).read_text()
        parts = split(text, args.max_bytes, args.checks)
    except (OSError, SplitError, UnicodeDecodeError) as exc:
        print(f"registry_parts: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(configmaps(parts, args.namespace))
    print(f"registry_parts: {len(parts)} ConfigMaps", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
