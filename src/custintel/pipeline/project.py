"""The front object: a project folder opened from its ``custintel.yaml``.

The CLI (and later the API) only parse input, call a :class:`Project` method and format
the result, so every interface behaves the same.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from custintel import __version__
from custintel.core.config import CONFIG_FILE, ProjectConfig, dump_config, load_config
from custintel.core.errors import ConfigError, CustintelError
from custintel.core.lineage import append_ops, ensure_ops_tables, new_run_id, now
from custintel.core.stages import stage as stage_named
from custintel.core.warehouse import SCHEMAS, Warehouse
from custintel.pipeline.attribution_tasks import AttributionTasks
from custintel.pipeline.campaign_delivery import CampaignDelivery
from custintel.pipeline.campaign_tasks import CampaignTasks
from custintel.pipeline.clv_tasks import ClvTasks
from custintel.pipeline.feature_tasks import FeatureTasks
from custintel.pipeline.identity_tasks import IdentityTasks
from custintel.pipeline.ingest_tasks import IngestTasks
from custintel.pipeline.measure_tasks import MeasureTasks
from custintel.pipeline.model_tasks import ModelTasks
from custintel.pipeline.parts import Progress, RunResult, StageResult
from custintel.pipeline.segment_tasks import SegmentTasks
from custintel.pipeline.serving_tasks import ServingTasks
from custintel.pipeline.uplift_tasks import UpliftTasks

StageFunction = Callable[[Any, str, Progress | None], StageResult]


def _run_function(name: str) -> StageFunction:
    """The function that runs a stage, from its line in :mod:`custintel.core.stages`."""
    module, _, function = stage_named(name).run.partition(":")
    return getattr(importlib.import_module(module), function)


def init_project(
    project_dir: Path, config: ProjectConfig | None = None, *, force: bool = False
) -> Path:
    """Write ``custintel.yaml`` (refusing to overwrite unless ``force``) and create the warehouse."""
    project_dir.mkdir(parents=True, exist_ok=True)
    path = project_dir / CONFIG_FILE
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists (use --force to overwrite)")
    config = config or ProjectConfig(name=project_dir.resolve().name)
    header = "# custintel project configuration: docs/configuration.md describes every key.\n"
    path.write_text(header + dump_config(config), encoding="utf-8")
    with Project.open(project_dir) as project:
        ensure_ops_tables(project.warehouse)
    return path


class Project(
    IngestTasks,
    IdentityTasks,
    FeatureTasks,
    SegmentTasks,
    ModelTasks,
    ClvTasks,
    CampaignTasks,
    CampaignDelivery,
    MeasureTasks,
    UpliftTasks,
    AttributionTasks,
    ServingTasks,
):
    """A project folder: its config and (opened on first use) its warehouse."""

    def __init__(
        self, project_dir: Path, config: ProjectConfig, *, read_only: bool = False
    ) -> None:
        self.dir = Path(project_dir)
        self.config = config
        self.read_only = read_only
        self._warehouse: Warehouse | None = None

    @classmethod
    def open(cls, project_dir: Path | str = ".", *, read_only: bool = False) -> Project:
        """A project folder; ``read_only`` for commands that only look (status, quality,
        report, explain, list): nothing in the folder is written."""
        project_dir = Path(project_dir)
        return cls(project_dir, load_config(project_dir), read_only=read_only)

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            wc = self.config.warehouse
            self._warehouse = Warehouse.open(
                wc.url,
                self.dir,
                threads=wc.threads,
                memory_limit=wc.memory_limit,
                read_only=self.read_only,
                lock_wait_s=wc.lock_wait_s,
                spark=wc.spark,
            )
        return self._warehouse

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def reports_dir(self) -> Path:
        return self.dir / self.config.reports_dir

    # -- model artefacts ----------------------------------------------------------------
    @property
    def artifacts_dir(self) -> Path:
        return self.dir / self.config.artifacts_dir

    def run(self, *, resume: bool = False, progress: Progress | None = None) -> RunResult:
        """Run every configured stage in order; ``resume`` continues the last failed run."""
        wh = self.warehouse
        ensure_ops_tables(wh)
        run_id, done = new_run_id(), set()
        if resume:
            last = self.last_run()
            if last and last["status"] == "failed":
                run_id = last["run_id"]
                done = {s["stage"] for s in last["stages"] if s["status"] == "ok"}
        results: list[StageResult] = []
        for stage in self.config.stages:
            if stage in done:
                results.append(StageResult(stage, "skipped", "done earlier in this run"))
                continue
            started = now()
            try:
                result = _run_function(stage)(self, run_id, progress)
            except CustintelError as exc:
                result = StageResult(stage, "failed", str(exc))
            append_ops(
                wh,
                "pipeline_runs",
                [
                    {
                        "run_id": run_id,
                        "stage": stage,
                        "status": result.status,
                        "started_at": started,
                        "finished_at": now(),
                        "message": result.message,
                        "code_version": __version__,
                        "config_hash": self.config.config_hash(),
                    }
                ],
            )
            results.append(result)
            if result.status == "failed":
                break
        return RunResult(run_id, results)

    def last_run(self) -> dict[str, Any] | None:
        ensure_ops_tables(self.warehouse)
        runs = self.warehouse.table("ops", "pipeline_runs").execute()
        if runs.empty:
            return None
        run_id = runs.sort_values("started_at").run_id.iloc[-1]
        rows = runs[runs.run_id == run_id].sort_values("started_at")
        latest = rows.groupby("stage", sort=False).tail(1)
        stages = [
            {"stage": r.stage, "status": r.status, "message": r.message}
            for r in latest.itertuples()
        ]
        status = "failed" if any(s["status"] == "failed" for s in stages) else "ok"
        return {"run_id": run_id, "status": status, "stages": stages}

    def status(self) -> dict[str, Any]:
        wh = self.warehouse
        if not wh.read_only:
            ensure_ops_tables(wh)
        tables = []
        for schema in SCHEMAS:
            if schema == "staging":
                continue
            for name in wh.tables(schema):
                tables.append({"table": f"{schema}.{name}", "rows": wh.count(schema, name)})
        runs = wh.table("ops", "ingest_runs").order_by("started_at").execute().tail(5)
        last_runs = [
            {
                "run_id": r.run_id,
                "started_at": r.started_at.isoformat(),
                "status": r.status,
                "files_loaded": int(r.files_loaded),
                "files_skipped": int(r.files_skipped),
                "files_failed": int(r.files_failed),
                "rows_in": int(r.rows_in),
                "reconciled": bool(r.reconciled),
            }
            for r in runs.itertuples()
        ]
        return {
            "project": str(self.dir),
            "warehouse": wh.url,
            "tables": tables,
            "ingest_runs": last_runs,
        }


__all__ = ["Project", "RunResult", "StageResult", "init_project"]
