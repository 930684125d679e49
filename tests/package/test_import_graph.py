"""The package's import graph: no circles, and the checker and aggregator stay apart.

Read from the source (every ``import``, also inside functions and under
TYPE_CHECKING: a circle that only type checking or a lazy import closes is
still a circle in the design), and checked by importing each module on its
own, so no module works only because another one happened to load first.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Installed name -> folder, as pyproject's package-dir says.
FOLDERS = {
    "healthplane": ROOT / "src" / "healthplane",
    "healthplane.checker": ROOT / "checker",
    "healthplane.aggregator": ROOT / "aggregator",
    "healthplane.proto": ROOT / "proto",
    "healthplane.deploy": ROOT / "deploy",
}
GENERATED = "healthplane.proto.healthplane"   # protobuf stubs: registered once per process


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if not name.startswith(GENERATED):
                out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every healthplane module that name's source imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import mod" names a module when mod is one.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}   # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_every_component() -> None:
    for package in FOLDERS:
        assert package in MODULES
    assert "healthplane.aggregator.tick" in GRAPH["healthplane.aggregator.state"]


def test_no_import_circles() -> None:
    cycle = _cycle()
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("side, other", [("checker", "aggregator"), ("aggregator", "checker")])
def test_checker_and_aggregator_never_import_each_other(side: str, other: str) -> None:
    bad = {name: sorted(t for t in targets if t.startswith(f"healthplane.{other}"))
           for name, targets in GRAPH.items() if name.startswith(f"healthplane.{side}")}
    assert {k: v for k, v in bad.items() if v} == {}


def _forget_package() -> None:
    for loaded in [m for m in sys.modules if m.startswith("healthplane")
                   and not m.startswith(GENERATED)]:
        del sys.modules[loaded]


def test_every_module_imports_on_its_own() -> None:
    # The modules the rest of the suite already holds come back afterwards:
    # classes imported twice would not compare equal across tests.
    before = {m: mod for m, mod in sys.modules.items() if m.startswith("healthplane")}
    failures = []
    try:
        for name in sorted(MODULES):
            if name.endswith("__main__"):
                continue
            _forget_package()
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - reported together below
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        _forget_package()
        sys.modules.update(before)
    assert failures == []
