"""What the task mixins use of :class:`~custintel.pipeline.project.Project`, declared once
so each mixin type-checks on its own, and what a stage's run function returns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from custintel.core.config import ProjectConfig
    from custintel.core.warehouse import Warehouse


Progress = Callable[[str, int, int], None]
"""``(label, done, total)``: how long jobs report progress to a bar."""


@dataclass
class StageResult:
    stage: str
    status: str  # ok | failed | skipped
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    run_id: str
    stages: list[StageResult]

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.stages)


class ProjectParts:
    """What the task methods use of :class:`~custintel.pipeline.project.Project`."""

    dir: Path
    config: ProjectConfig

    if TYPE_CHECKING:

        @property
        def warehouse(self) -> Warehouse: ...

        @property
        def artifacts_dir(self) -> Path: ...

        def features_frame(self, as_of: dt.date) -> pd.DataFrame: ...

        def features_catalog(self) -> pd.DataFrame: ...
