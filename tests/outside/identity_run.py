"""Resolve an outside profile set with custintel and score it against its truth; shared
by the tests and the identity benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.core.config import IdentityConfig, ProjectConfig, SourceConfig
from custintel.pipeline.project import Project, init_project
from tests.outside import profiles


def write_project(
    root: Path, files: dict[str, pd.DataFrame], identity: IdentityConfig | None = None
) -> Path:
    """A project mapping the outside files by their own column names."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    sources = {}
    for name, frame in files.items():
        frame.to_csv(data / f"{name}.csv", index=False)
        sources[name] = SourceConfig(
            contract="customers",
            path=f"data/{name}.csv",
            columns=profiles.mapping(list(frame.columns)),
            date_format="%m/%d/%Y",
        )
    identity = identity or IdentityConfig(default_region="US")
    init_project(root, ProjectConfig(name="outside", sources=sources, identity=identity))
    return root


def resolve(project: Path) -> tuple[dict, str]:
    """Ingest and resolve through the command line: the JSON summary and the plain text."""
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--project", str(project), "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["identity", "resolve", "--project", str(project), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    with Project.open(project, read_only=True) as p:
        model = p.warehouse.table("identity", "model").execute()
    return summary, str(model.status.iloc[-1])


def customer_map(project: Path) -> pd.DataFrame:
    with Project.open(project, read_only=True) as p:
        return p.warehouse.table("identity", "customer_map").execute()[
            ["source", "source_id", "customer_id"]
        ]


def pairs(labels: pd.Series) -> int:
    n = labels.value_counts()
    return int((n * (n - 1) // 2).sum())


def scores(cmap: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Pairwise precision, recall and F1 against the truth, every source record counted
    (a record missing from the map is its own customer), and the share of household
    member pairs (different people of one household) put into one customer."""
    m = truth.merge(
        cmap, left_on=["source", "cust_no"], right_on=["source", "source_id"], how="left"
    )
    missing = m.customer_id.isna()
    m.loc[missing, "customer_id"] = "missing:" + m.loc[missing, "cust_no"]
    both = m.groupby(["customer_id", "person_id"]).size()
    tp = int((both * (both - 1) // 2).sum())
    p = tp / max(pairs(m.customer_id), 1)
    r = tp / max(pairs(m.person_id), 1)
    people = m.groupby("person_id").agg(
        household=("household_id", "first"), ids=("customer_id", set)
    )
    merged = total = 0
    for _, members in people.groupby("household"):
        ids = list(members.ids)
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                total += 1
                merged += bool(ids[i] & ids[j])
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / max(p + r, 1e-12), 4),
        "household_pairs": total,
        "households_merged": round(merged / max(total, 1), 4),
        "records": len(m),
        "records_missing": int(missing.sum()),
    }
