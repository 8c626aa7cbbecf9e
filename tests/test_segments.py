"""Segments on a simulated shop, checked against the planted personas.

One project (20,000 simulated people, copied from the session's ingested shop) is
resolved, its features built for two dates and segmented once; the tests read it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import adjusted_rand_score

from custintel.cli.main import app
from custintel.core import registry
from custintel.core.errors import StageError
from custintel.features.build import events_for
from custintel.features.training import opted_out
from custintel.pipeline.project import Project
from tests.conftest import parse_json_output, persona_of_customers

AS_OF = dt.date(2025, 6, 30)
EARLIER = dt.date(2025, 3, 31)


@pytest.fixture(scope="module")
def shop(resolved_shop: Path, tmp_path_factory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("segments") / "shop"
    shutil.copytree(resolved_shop, project)
    with Project.open(project) as p:
        fit = p.segment_fit(AS_OF)
        entry, model = p.segment_model()
        frame = p.features_frame(AS_OF)
        assigned = p.warehouse.table("segments", "assignments").execute()
    linked = persona_of_customers(project)
    persona = linked.groupby("customer_id").persona.agg(lambda s: s.mode().iloc[0])
    return {
        "project": project,
        "fit": fit,
        "entry": entry,
        "model": model,
        "frame": frame,
        "assigned": assigned,
        "persona": persona,
    }


def test_the_planted_personas_are_recovered(shop: dict[str, Any]) -> None:
    a = shop["assigned"].set_index("customer_id").join(shop["persona"])
    clustered = a[a.segment_id.str.startswith("S")]
    assert shop["fit"]["k"] == 5, shop["fit"]["reason"]
    score = adjusted_rand_score(clustered.persona, clustered.segment_id)
    assert score >= 0.75, score
    assert len(clustered) / len(a) > 0.6  # customers with two purchases or more
    # the rule segments hold exactly the customers with too little history
    frame = shop["frame"].set_index("customer_id")
    counts = frame.loc[a.index, "purchase_count"].to_numpy()
    assert ((a.segment_id == "NP") == (counts == 0)).all()
    assert ((a.segment_id == "EB") == (counts == 1)).all()


def test_segments_are_stable_and_distinct(shop: dict[str, Any]) -> None:
    s = registry.summary(shop["project"] / "artifacts", shop["entry"])
    assert s["bootstrap"]["ari_mean"] >= 0.9, s["bootstrap"]
    assert min(s["bootstrap"]["jaccard"].values()) >= 0.75
    effect = {d["feature"]: d["epsilon_squared"] for d in s["distinctness"]}
    assert set(effect) == set(shop["model"].features)
    assert max(effect.values()) > 0.3


def test_names_are_unique_and_read_off_the_profiles(shop: dict[str, Any]) -> None:
    names = shop["model"].names
    assert len(set(names.values())) == len(names)
    s = registry.summary(shop["project"] / "artifacts", shop["entry"])
    prof = {p["segment_name"]: p for p in s["profiles"]}
    a = shop["assigned"].set_index("customer_id").join(shop["persona"])
    main = a.groupby("segment_name").persona.agg(lambda x: x.mode().iloc[0])
    # the segment most loyal customers land in is named High-Value, the new ones New
    assert "High-Value" in main[main == "loyal_high_value"].index[0]
    assert main[main == "new_promising"].index[0].startswith("New")
    assert any("Deal-Seeking" in n for n in main[main == "bargain_hunter"].index)
    high = next(n for n in prof if n.startswith("High-Value"))
    assert prof[high]["revenue_share"] > prof[high]["share"]


def test_the_sql_case_reproduces_the_surrogate_tree_in_duckdb(shop: dict[str, Any]) -> None:
    model, frame = shop["model"], shop["frame"]
    s = registry.summary(shop["project"] / "artifacts", shop["entry"])
    assert s["surrogate"]["fidelity"] >= 0.95, s["surrogate"]
    sql = model.to_sql()
    con = duckdb.connect()
    con.register("f", frame)
    got = con.sql(f"SELECT customer_id, {sql} AS segment FROM f").df().set_index("customer_id")
    X = frame[model.tree_features].apply(pd.to_numeric, errors="coerce").astype("float64")
    tree = np.array([model.names[c] for c in model.tree.predict(X)], dtype=object)
    counts = pd.to_numeric(frame.purchase_count).fillna(0).to_numpy()
    tree[counts < 2] = np.where(counts[counts < 2] < 1, "No Purchase Yet", "One-Time Buyers")
    assert (got.loc[frame.customer_id, "segment"].to_numpy() == tree).all()
    # and agrees with the clustering itself where it counts
    assigned = shop["assigned"].set_index("customer_id").loc[frame.customer_id]
    assert (assigned.segment_name.to_numpy() == tree).mean() >= 0.95


def test_customers_who_opted_out_of_profiling_get_no_segment(shop: dict[str, Any]) -> None:
    with Project.open(shop["project"], read_only=True) as p:
        events, _ = events_for(p.warehouse, p.config)
        out = set(opted_out(events, AS_OF).execute().customer_id)
    assigned = shop["assigned"]
    assigned = set(assigned[pd.to_datetime(assigned.as_of).dt.date == AS_OF].customer_id)
    assert len(out) > 50 and assigned and not assigned & out


def test_assign_compare_and_rerun_without_duplicates(shop: dict[str, Any]) -> None:
    with Project.open(shop["project"]) as p:
        first = p.segment_assign(EARLIER)
        again = p.segment_assign(EARLIER)
        assert first == again
        t = p.warehouse.table("segments", "assignments").execute()
        earlier = t[pd.to_datetime(t.as_of).dt.date == EARLIER]
        assert len(earlier) == first["customers"] == earlier.customer_id.nunique()
        c = p.segment_compare(EARLIER, AS_OF)
        events, _ = events_for(p.warehouse, p.config)
        out_later = set(opted_out(events, AS_OF).execute().customer_id)
    matrix = pd.DataFrame(c["matrix"]).T.fillna(0)
    gone = matrix.get("(gone)", pd.Series(0, index=matrix.index)).sum()
    assert (
        matrix.drop(index="(not yet a customer)", errors="ignore").to_numpy().sum()
        == (c["customers_from"])
    )
    # nobody stops existing, but whoever opts out of profiling in between leaves the
    # segments (docs/consent.md)
    opted_out_since = len(set(earlier.customer_id) & out_later)
    assert gone == opted_out_since > 0
    assert c["in_both"] == c["customers_from"] - opted_out_since
    assert 0.5 < c["stayed"] < 1.0
    # customers new since the earlier date arrive as new or early segments mostly
    newcomers = matrix.loc["(not yet a customer)"]
    assert newcomers.sum() == c["customers_to"] - c["customers_from"] + gone


def test_a_refit_is_deterministic_and_a_rerun_registers_nothing(shop: dict[str, Any]) -> None:
    with Project.open(shop["project"]) as p:
        rerun = p.segment_fit(AS_OF)
        assert rerun["unchanged"] and rerun["version"] == shop["fit"]["version"]
        again = p.segment_fit(AS_OF, k=5)  # other settings: a new version
        versions = registry.versions(p.warehouse, "segments")
        t = p.warehouse.table("segments", "assignments").execute()
    assert not again["unchanged"] and again["version"] == shop["fit"]["version"] + 1
    assert again["segments"] == shop["fit"]["segments"]
    assert versions.set_index("version").loc[again["version"], "aliases"] == "active"
    on_date = t[pd.to_datetime(t.as_of).dt.date == AS_OF]
    mine = on_date[on_date.model_version == again["version"]].set_index("customer_id").segment_id
    before = on_date[on_date.model_version == shop["fit"]["version"]]
    before = before.set_index("customer_id").segment_id
    assert len(mine) == len(before) and (before.loc[mine.index] == mine).all()


def _config(project: Path, **segments: Any) -> None:
    path = project / "custintel.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("segments", {}).update(segments)
    path.write_text(yaml.safe_dump(data))


def test_name_overrides_and_bad_input_are_clear(shop: dict[str, Any], tmp_path: Path) -> None:
    project = tmp_path / "shop"
    shutil.copytree(shop["project"], project)
    auto = sorted(shop["model"].names.values())
    pick = next(n for n in auto if n.startswith("High-Value"))
    _config(project, names={pick: "VIP"}, bootstrap=0)
    with Project.open(project) as p:
        r = p.segment_fit(AS_OF)
        assert "VIP" in r["segments"] and pick not in r["segments"]
        entry, _ = p.segment_model()
        s = registry.summary(p.artifacts_dir, entry)
        assert s["overrides"][0]["automatic"] == pick and s["overrides"][0]["name"] == "VIP"
    cases = {
        "purchase_cnt": r"feature 'purchase_cnt' is not in the feature catalog \(did you mean "
        "purchase_count",
        "top_category": "feature 'top_category' is a category",
    }
    for feature, message in cases.items():
        _config(project, features=["purchase_count", feature])
        with Project.open(project) as p, pytest.raises(StageError, match=message):
            p.segment_fit(AS_OF)
    _config(project, features=["purchase_count", "avg_order_value"], k=5000)
    with Project.open(project) as p, pytest.raises(StageError, match="too few for k=5000"):
        p.segment_fit(AS_OF)


def test_assign_refuses_a_model_of_another_feature_set(
    shop: dict[str, Any], tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    shutil.copytree(shop["project"], project)
    with Project.open(project) as p:
        entry, model = p.segment_model()
        model.feature_set_version = "0000"
        import joblib

        joblib.dump(model, entry.folder(p.artifacts_dir) / "model.joblib")
        with pytest.raises(StageError, match="feature set version 0000"):
            p.segment_assign(EARLIER)
        with pytest.raises(StageError, match="has no version 99"):
            p.segment_model(99)


def test_cli_fit_rfm_and_export_rules(shop: dict[str, Any], tmp_path: Path, runner) -> None:
    project = tmp_path / "shop"
    shutil.copytree(shop["project"], project)
    r = runner.invoke(
        app,
        [
            "segment",
            "fit",
            "-p",
            str(project),
            "--method",
            "rfm",
            "--as-of",
            "2025-06-30",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = parse_json_output(r.stdout)
    assert out["method"] == "rfm" and "Champions" in out["segments"]
    assert Path(out["report"]).exists()
    r = runner.invoke(app, ["segment", "export-rules", "-p", str(project), "--format", "sql"])
    assert r.exit_code == 0, r.output
    sql = r.stdout.split("\n", 1)[1]
    with Project.open(project) as p:
        frame = p.features_frame(AS_OF)
        t = p.warehouse.table("segments", "assignments").execute()
    con = duckdb.connect()
    con.register("f", frame)
    got = con.sql(f"SELECT customer_id, {sql} AS s FROM f").df().set_index("customer_id").s
    mine = t[t.model_version == out["version"]].set_index("customer_id").segment_name
    assert (got.loc[mine.index] == mine).all()
    r = runner.invoke(app, ["segment", "export-rules", "-p", str(project), "--format", "xml"])
    assert r.exit_code == 1 and "unknown rules format" in r.output


def test_the_report_page_shows_the_evidence(shop: dict[str, Any]) -> None:
    import re

    from custintel.report import write_reports

    with Project.open(shop["project"]) as p:
        registry.set_alias(p.warehouse, "segments", "active", shop["fit"]["version"])
        p.segment_compare(EARLIER, AS_OF)
        index = write_reports(p)
    page = (index.parent / "segments.html").read_text()
    for title in (
        "Choosing k",
        "Share of customers and of net revenue",
        "Profile: segment mean against the base",
        "Snake plot",
        "Two principal components",
        "bootstrap refits",
        "Distinctness per feature",
        f"Migration {EARLIER}",
        "Rules for new customers",
        "Model versions",
    ):
        assert title in page, title
    assert "segments.html" in index.read_text()
    assert not re.search(r"<script[^>]+src=[\"']https?://", page)
