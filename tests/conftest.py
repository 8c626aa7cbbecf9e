"""Shared fixtures: real DuckDB files in tmp_path, the sample retailer with its known defects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.core.config import ProjectConfig, SourceConfig
from custintel.pipeline.project import Project, init_project
from custintel.simulate.sample import sample_config, write_sample

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The sample source files (written once) and the truth about their defects."""
    out = tmp_path_factory.mktemp("sample") / "data"
    _, truth = write_sample(out)
    return out, truth


@pytest.fixture
def sample_project(
    tmp_path: Path, sample_data: tuple[Path, dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """A fresh project mapping the sample files (read in place, not copied)."""
    data, truth = sample_data
    project = tmp_path / "shop"
    init_project(project, sample_config(data, project))
    return project, truth


def make_project(tmp_path: Path, **sources: SourceConfig) -> Path:
    """A project whose sources are given; files live under tmp_path/project/data."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True, exist_ok=True)
    init_project(project, ProjectConfig(sources=sources), force=True)
    return project


def ingest(project: Path, **kw: Any) -> dict[str, Any]:
    with Project.open(project) as p:
        return p.ingest(**kw).as_dict()


def query(project: Path, sql: str) -> list[tuple[Any, ...]]:
    with Project.open(project) as p:
        return p.warehouse.sql(sql).fetchall()


def paused_ingest(project: Path, marker: Path, **popen: Any) -> subprocess.Popen[Any]:
    """``custintel ingest`` in a subprocess, paused inside its first load's transaction
    (after the clean rows are written), for crash and interrupt tests."""
    env = dict(
        os.environ,
        CUSTINTEL_FAULT_PAUSE="ingest.after_clean_write",
        CUSTINTEL_FAULT_MARKER=str(marker),
    )
    command = [sys.executable, "-m", "custintel.cli", "ingest", "--project", str(project)]
    proc = subprocess.Popen([*command, *popen.pop("args", [])], env=env, **popen)
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, "ingest ended before reaching the pause"
        assert time.time() < deadline, "pause not reached"
        time.sleep(0.05)
    return proc


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def parse_json_output(text: str) -> Any:
    return json.loads(text[text.index("{") :])


@pytest.fixture(scope="session")
def simulated_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A project of 20,000 simulated customers, ingested once: (project, ingest summary)."""
    from custintel.simulate.writer import SimulationConfig, simulate, simulation_config

    project = tmp_path_factory.mktemp("simulated") / "shop"
    simulate(project / "data", SimulationConfig(customers=20_000, seed=11))
    init_project(project, simulation_config("data", "shop"))
    result = CliRunner().invoke(app, ["ingest", "--project", str(project), "--json"])
    assert result.exit_code == 0, result.output
    return project, json.loads(result.stdout)


@pytest.fixture(scope="session")
def resolved_shop(
    simulated_shop: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the simulated shop with identities resolved and features built as of
    2025-06-30 (copy it again before writing to it)."""
    import datetime as dt
    import shutil

    source, _ = simulated_shop
    project = tmp_path_factory.mktemp("resolved") / "shop"
    shutil.copytree(source, project)
    with Project.open(project) as p:
        p.identity_resolve()
        p.features_build(dt.date(2025, 6, 30))
    return project


def with_quick_models(project: Path, **update: Any) -> None:
    """Rewrite the project's config with one untuned LightGBM (and any other ``update``):
    for tests of what happens around a model, not of the model itself."""
    from custintel.core.config import TuningConfig, dump_config, load_config

    cfg = load_config(project)
    quick = cfg.models.model_copy(
        update={
            "tuning": TuningConfig(trials=0),
            "algorithms": ["lightgbm"],
            "compare_imbalance": False,
        }
    )
    (project / "custintel.yaml").write_text(
        dump_config(cfg.model_copy(update={"models": quick, **update})), encoding="utf-8"
    )


def cdnow_source(path: Path) -> dict[str, Any]:
    """CDNOW's purchase log as a source: headerless, whitespace separated, no order ids."""
    return {
        "contract": "orders",
        "path": str(path),
        "csv": {
            "delimiter": "whitespace",
            "header": False,
            "column_names": ["customer", "sample_id", "date", "cds", "dollars"],
        },
        "columns": {
            "customer_ref": "customer",
            "order_ts": "date",
            "quantity": "cds",
            "amount": "dollars",
        },
        "timestamp_format": "%Y%m%d",
        "currency": "USD",
    }


def persona_of_customers(project: Path) -> Any:
    """Each customer's planted persona (the most common among the people linked to it)."""
    import pandas as pd

    with Project.open(project) as p:
        cmap = p.warehouse.table("identity", "customer_map").execute()
    truth = project / "data" / "truth"
    records = pd.read_parquet(truth / "records.parquet")
    people = pd.read_parquet(truth / "people.parquet")
    return cmap.merge(
        records, left_on=["source", "source_id"], right_on=["system", "source_id"]
    ).merge(people, on="person_id")


def churn_scores_from_clv(p: Project, as_of: Any) -> None:
    """A churn propensity for campaign tests without training a classifier: 1 - P(alive)
    from a CLV model fitted on the purchases (a real model), stored as scores.churn_90d."""
    import pandas as pd

    from custintel.models.scoring import deciles, tiers

    p.clv_fit(as_of)
    p.score_clv(as_of)
    clv = p.warehouse.table("scores", "clv").execute()
    score = 1.0 - clv.p_alive.to_numpy()
    d = deciles(score)
    p.warehouse.ensure_schema("scores")
    p.warehouse.put(
        "scores",
        "churn_90d",
        pd.DataFrame(
            {
                "customer_id": clv.customer_id,
                "as_of": as_of,
                "score": score,
                "decile": d,
                "tier": tiers(d),
                "reasons": "[]",
                "model_version": 1,
            }
        ),
    )
