"""Ingest tasks of a project: load the sources, summarise their quality."""

from __future__ import annotations

from typing import Any

from custintel.core.lineage import new_run_id
from custintel.ingest.loader import Loader
from custintel.ingest.quality import quality_summary
from custintel.ingest.results import IngestSummary
from custintel.pipeline.parts import Progress, ProjectParts, StageResult


class IngestTasks(ProjectParts):
    """Ingest methods of :class:`~custintel.pipeline.project.Project`."""

    def ingest(
        self,
        sources: list[str] | None = None,
        *,
        run_id: str | None = None,
        progress: Progress | None = None,
        strict: bool | None = None,
    ) -> IngestSummary:
        loader = Loader(
            self.warehouse, self.config, self.dir, run_id=run_id or new_run_id(), progress=progress
        )
        return loader.run(sources, strict=strict)

    def quality(self) -> dict[str, Any]:
        return quality_summary(self.warehouse)


def run_stage(project: Any, run_id: str, progress: Progress | None) -> StageResult:
    """The ``ingest`` stage of ``custintel run``."""
    summary = project.ingest(run_id=run_id, progress=progress)
    detail = summary.as_dict()
    if summary.failed:
        return StageResult("ingest", "failed", "; ".join(r.message for r in summary.failed), detail)
    counts = (
        f"{detail['files_loaded']} loaded, {detail['files_skipped']} unchanged; "
        f"{detail['rows_in']} rows in = {detail['rows_clean']} clean + "
        f"{detail['rows_quarantined']} quarantined + {detail['rows_duplicate']} duplicates"
    )
    if summary.warnings:
        counts += "; warnings: " + "; ".join(summary.warnings)
    return StageResult("ingest", "ok", counts, detail)
