"""The Containerfile's shape, and its install step run for real in a fresh venv.

Image builds need a registry to pull the base image from, which the test
machines cannot reach; so the test runs the very script the Containerfile
RUNs (deploy/install.sh) on the same build context (.containerignore
applied), and checks the installed tree the image would hold.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from healthplane import __version__

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_multi_stage_pinned_non_root_with_healthplane_entrypoint() -> None:
    steps = instructions()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in steps if w == "ARG" and "=" in a}
    froms = [a.replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")) for w, a in steps
             if w == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in froms:
        ref = image.split()[0]
        # An exact release (x.y.z) or a digest: never latest or a moving minor tag.
        assert re.search(r":\d+\.\d+\.\d+[-\w.]*$|@sha256:[0-9a-f]{64}$", ref), ref
    users = [a for w, a in steps if w == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), users
    assert [a for w, a in steps if w == "ENTRYPOINT"] == ['["/opt/healthplane/bin/healthplane"]']
    assert ("COPY", "--from=build /opt/healthplane /opt/healthplane") in steps


def build_context(dest: Path) -> Path:
    """The repository as the image build sees it: .containerignore applied."""
    patterns = [p.strip() for p in (ROOT / ".containerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.removeprefix("**/"))
                   or fnmatch.fnmatch(Path(rel).name, p.removeprefix("**/")) for p in patterns)

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel_dir = Path(directory).relative_to(ROOT)
        return {n for n in names if ignored(str(rel_dir / n).removeprefix("./"))}

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.mark.timeout(600)
def test_install_step_in_a_fresh_venv(tmp_path: Path) -> None:
    runs = [a for w, a in instructions() if w == "RUN" and "install.sh" in a]
    assert runs == ["sh /src/deploy/install.sh /src /opt/healthplane"]
    src = build_context(tmp_path / "src")
    assert not (src / ".venv").exists() and not (src / ".git").exists()
    prefix = tmp_path / "opt" / "healthplane"
    argv = [w.replace("/src", str(src)).replace("/opt/healthplane", str(prefix))
            for w in shlex.split(runs[0])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith(f"healthplane {__version__}")
    exe = prefix / "bin" / "healthplane"
    # Not an editable install: everything, package data too, lives in the venv.
    check = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import importlib.resources as r, healthplane\n"
         "print(healthplane.__file__)\n"
         "for pkg, name in [('healthplane.aggregator', 'status/index.html'),\n"
         "                  ('healthplane.deploy', 'examples/checks.yaml'),\n"
         "                  ('healthplane.proto', 'healthplane/v1/healthplane.proto')]:\n"
         "    assert r.files(pkg).joinpath(name).is_file(), name\n"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(str(prefix)), check.stdout
    examples = src / "deploy" / "examples"
    done = subprocess.run([str(exe), "validate", str(examples / "checks.yaml"), "--fleet",
                           str(examples / "fleet.yaml"), "--zone", str(examples / "zone.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("ok:"), done.stderr
