"""The ``custintel`` command: a thin layer that parses options, calls :class:`Project`
and prints tables (or JSON with ``--json``). Failures print one line and exit 1.

Each command group is a module of this package; a stage's group is named by its line in
:mod:`custintel.core.stages` and added here, so a new stage needs no edit of this file.
"""

from __future__ import annotations

import importlib

from custintel.cli import project as _project_commands  # noqa: F401  (adds its commands)
from custintel.cli.common import app
from custintel.core.stages import STAGES

for _stage in STAGES:
    importlib.import_module(_stage.cli)


def main() -> None:  # pragma: no cover - entry point
    app()


__all__ = ["app", "main"]
