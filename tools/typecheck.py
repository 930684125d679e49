"""Run mypy over the installed package layout, from the source tree.

The repository keeps one folder per component (checker/, aggregator/,
proto/, deploy/) and installs them as sub-packages of ``healthplane``; the
editable install maps them with an import hook, which mypy cannot follow.
This builds the ``healthplane`` tree out of symlinks in a temporary folder,
runs mypy on it with the settings in pyproject.toml, and prints every path
as the repository file it points to.

    .venv/bin/python tools/typecheck.py [extra mypy arguments]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[str, Path]:
    """Top-level folders of the healthplane package, by their installed name."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def build_tree(dest: Path) -> dict[str, str]:
    """Symlink the package into dest; returns {installed prefix: repository prefix}."""
    dirs = package_dirs()
    root = dest / "healthplane"
    root.mkdir()
    for entry in dirs["healthplane"].iterdir():
        if entry.name != "__pycache__":
            os.symlink(entry, root / entry.name)
    rewrite = {"healthplane/": os.path.relpath(dirs["healthplane"], ROOT) + "/"}
    for name, folder in dirs.items():
        if name == "healthplane":
            continue
        sub = name.split(".", 1)[1]
        os.symlink(folder, root / sub)
        rewrite[f"healthplane/{sub}/"] = os.path.relpath(folder, ROOT) + "/"
    return rewrite


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="healthplane-mypy-") as tmp:
        rewrite = build_tree(Path(tmp))
        # Longest prefix first, so healthplane/checker/ wins over healthplane/.
        prefixes = sorted(rewrite, key=len, reverse=True)
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
             "--cache-dir", str(ROOT / ".mypy_cache"), *argv],
            cwd=tmp, capture_output=True, text=True, check=False)
        for line in (proc.stdout + proc.stderr).splitlines():
            for prefix in prefixes:
                if line.startswith(prefix):
                    line = rewrite[prefix] + line[len(prefix):]
                    break
            print(line)
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
