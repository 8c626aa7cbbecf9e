"""Dependencies point one way (docs/architecture.md): core <- capabilities <- pipeline <- cli."""

from __future__ import annotations

import ast
from pathlib import Path

import custintel

PACKAGE = Path(custintel.__file__).parent
LAYER = {
    "core": 0,
    "ingest": 1,
    "simulate": 1,
    "identity": 1,
    "features": 1,
    "segments": 1,
    "models": 1,
    "clv": 1,
    "pipeline": 2,
    "cli": 3,
}
CAPABILITIES = {name for name, rank in LAYER.items() if rank == 1}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("custintel.")
        ):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("custintel.")}
    return names


def test_every_package_is_assigned_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYER)


def test_imports_only_point_down() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        own = path.relative_to(PACKAGE).parts[0]
        if own not in LAYER:
            continue
        for target in _imports(path):
            if target not in LAYER:
                continue
            upward = LAYER[target] > LAYER[own]
            sideways = own in CAPABILITIES and target in CAPABILITIES and target != own
            if upward or sideways:
                problems.append(f"{path.relative_to(PACKAGE)} imports custintel.{target}")
    assert problems == []
