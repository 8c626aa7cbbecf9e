"""Dependencies point one way (docs/architecture.md): core and stats <- capabilities <- pipeline <-
report <- cli. The capabilities are read from the stage registry, so a new stage's package
is checked the day it is declared."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import custintel
from custintel.core.stages import STAGES

PACKAGE = Path(custintel.__file__).parent
LAYER = {
    "core": 0,
    "stats": 0,
    **{s.capability: 1 for s in STAGES},
    "simulate": 1,
    "pipeline": 2,
    "report": 3,
    "cli": 4,
    "service": 4,
}
CAPABILITIES = {name for name, rank in LAYER.items() if rank == 1}


def _imports(path: Path) -> set[str]:
    """Every custintel package a module imports, at the top or inside a function."""
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


def wrong_way_imports(root: Path) -> list[str]:
    """Imports that point up a layer, or sideways between two capabilities."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = path.relative_to(root).parts[0]
        if own not in LAYER:
            continue
        for target in _imports(path):
            if target not in LAYER:
                continue
            upward = LAYER[target] > LAYER[own]
            sideways = own in CAPABILITIES and target in CAPABILITIES and target != own
            if upward or sideways:
                problems.append(f"{path.relative_to(root)} imports custintel.{target}")
    return problems


def test_every_package_is_assigned_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYER)


def test_every_stage_names_modules_that_exist() -> None:
    for stage in STAGES:
        for dotted in (stage.run.partition(":")[0], stage.page, stage.cli):
            parts = dotted.split(".")[1:]
            assert (PACKAGE.joinpath(*parts[:-1]) / f"{parts[-1]}.py").is_file(), dotted
        assert (PACKAGE / stage.capability / "__init__.py").is_file(), stage.name


def test_imports_only_point_down() -> None:
    assert wrong_way_imports(PACKAGE) == []


def test_a_planted_wrong_way_import_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: a core module importing the pipeline, a capability
    importing a sibling inside a function, a stage module importing the CLI."""
    root = tmp_path / "custintel"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert wrong_way_imports(root) == []
    (root / "core" / "planted.py").write_text("from custintel.pipeline.project import Project\n")
    (root / "segments" / "planted.py").write_text(
        "def f():\n    from custintel.models.train import train\n    return train\n"
    )
    (root / "report" / "planted.py").write_text("import custintel.cli.main\n")
    assert wrong_way_imports(root) == [
        "core/planted.py imports custintel.pipeline",
        "report/planted.py imports custintel.cli",
        "segments/planted.py imports custintel.models",
    ]


def test_commands_reach_capabilities_only_through_the_pipeline() -> None:
    """The CLI parses, calls `Project` (or a pipeline function) and formats; a second
    interface (the service) then gets the same behaviour by calling the same functions."""
    reached = {
        f"{path.name} imports custintel.{target}"
        for path in (PACKAGE / "cli").glob("*.py")
        for target in _imports(path)
        if target in CAPABILITIES
    }
    assert reached == set()
