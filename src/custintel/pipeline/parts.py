"""What the task mixins (segments, models) use of :class:`~custintel.pipeline.project.Project`,
declared once so each mixin type-checks on its own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from custintel.core.config import ProjectConfig
    from custintel.core.warehouse import Warehouse


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
