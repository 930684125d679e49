"""The distribution as a user installs it: one import package, beside others.

healthplane once installed four generic top-level packages (``proto``,
``checker``, ``aggregator``, ``deploy``); ``proto`` is also proto-plus's import
name, so the two broke each other. These tests build the real wheel and install
it into a fresh virtual environment next to proto-plus.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import healthplane

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(600)


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          timeout=540)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", out, ROOT)
    [built] = out.glob("healthplane-*.whl")
    return built


def test_the_wheel_has_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"healthplane"}
    # Package data travels with it: the .proto file, the example configs.
    assert "healthplane/proto/healthplane/v1/healthplane.proto" in names
    assert "healthplane/deploy/examples/checks.yaml" in names
    assert f"healthplane-{healthplane.__version__}.dist-info/METADATA" in names


def test_installs_beside_proto_plus_and_both_import(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    _run(py, "-m", "pip", "install", "-q", wheel, "proto-plus")
    # Run from an empty folder so nothing of this checkout is on sys.path.
    check = (
        "import proto, healthplane.proto.codec, healthplane.checker.runner, "
        "healthplane.aggregator.server, healthplane.deploy.demo\n"
        "assert hasattr(proto, 'Message'), proto.__file__\n"
        "assert 'site-packages' in healthplane.__file__, healthplane.__file__\n"
    )
    _run(py, "-c", check, cwd=tmp_path)
    version = _run(env / "bin" / "healthplane", "--version", cwd=tmp_path)
    assert version.strip() == f"healthplane {healthplane.__version__}"
    assert _run(py, "-m", "healthplane", "version", cwd=tmp_path) == version
    # Uninstalling one must leave the other whole.
    _run(py, "-m", "pip", "uninstall", "-y", "-q", "healthplane")
    _run(py, "-c", "import proto; proto.Message", cwd=tmp_path)


def test_version_in_the_checkout() -> None:
    for argv in (["--version"], ["version"]):
        done = subprocess.run([sys.executable, "-m", "healthplane", *argv],
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (0, f"healthplane {healthplane.__version__}\n")
