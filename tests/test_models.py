"""A churn model on the simulated shop, judged against the simulator's truth."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from custintel.cli.main import app
from custintel.core import registry
from custintel.core.config import TuningConfig, dump_config, load_config
from custintel.core.errors import StageError
from custintel.pipeline.project import Project
from tests.conftest import persona_of_customers, with_quick_models

TRIALS = 8

SNAPSHOTS = [dt.date(2024, 9, 30), dt.date(2024, 12, 31), dt.date(2025, 3, 31)]
AS_OF = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def churn(resolved_shop: Path, tmp_path_factory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("models") / "shop"
    shutil.copytree(resolved_shop, project)
    # Eight tuning trials, not the default twenty: the same search, in the time CI has.
    cfg = load_config(project)
    quick = cfg.models.model_copy(update={"tuning": TuningConfig(trials=TRIALS)})
    (project / "custintel.yaml").write_text(
        dump_config(cfg.model_copy(update={"models": quick})), encoding="utf-8"
    )
    with Project.open(project) as p:
        p.features_training_set("churn_90d", SNAPSHOTS)
        result = p.model_train("churn_90d")
        entry = registry.get(p.warehouse, "churn_90d")
        model = registry.load(p.artifacts_dir, entry)
        frame = p.features_frame(AS_OF)
    return {"project": project, "result": result, "entry": entry, "model": model, "frame": frame}


def test_out_of_time_quality_against_the_oracle(churn: dict[str, Any]) -> None:
    """Scored as of the simulation's end, the model ranks the realised churn of the next 90
    days (known only to the truth) well, and close to what the true purchase
    probabilities achieve. Those know whether each person is still alive, which no
    history shows, so that oracle is an upper bound the model cannot reach; the history
    oracle knows only each person's persona priors and every purchase they made."""
    linked = persona_of_customers(churn["project"])
    people = linked.groupby("customer_id").agg(
        people=("person_id", "nunique"),
        p=("p_purchase_90d", "first"),
        p_history=("p_purchase_90d_given_history", "first"),
        bought=("purchases_next_90d", "first"),
    )
    people = people[people.people == 1]
    frame = churn["frame"]
    scored = pd.DataFrame(
        {"customer_id": frame.customer_id, "score": churn["model"].predict_frame(frame)}
    )
    both = scored.set_index("customer_id").join(people, how="inner")
    churned = (both.bought == 0).astype(int)
    model_auc = roc_auc_score(churned, both.score)
    oracle_auc = roc_auc_score(churned, 1 - both.p)
    history_auc = roc_auc_score(churned, 1 - both.p_history)
    recency_auc = roc_auc_score(
        churned,
        frame.set_index("customer_id").loc[both.index, "days_since_last_purchase"].fillna(9999),
    )
    assert model_auc > 0.85, model_auc
    assert model_auc > recency_auc + 0.02  # it learns more than "long since the last order"
    assert oracle_auc - model_auc < 0.1, (model_auc, oracle_auc)
    # the oracle that knows each person's persona priors but only their purchases
    assert history_auc - model_auc < 0.06, (model_auc, history_auc)
    # the recorded out-of-time test on the latest snapshot
    test = churn["result"]["test"]
    assert test["auc"] > 0.83 and test["ece"] < 0.06, test
    assert test["top_decile_lift"] > 2.0


def test_time_split_and_registry_entry(churn: dict[str, Any]) -> None:
    r, entry = churn["result"], churn["entry"]
    assert r["split"] == {
        "train": ["2024-09-30"],
        "validation": "2024-12-31",
        "test": "2025-03-31",
    }
    assert set(r["candidates"]) >= {"logistic", "lightgbm"}
    assert entry.kind == "propensity" and entry.metrics["auc"] == r["test"]["auc"]
    assert entry.snapshots == ["2024-09-30", "2024-12-31", "2025-03-31"]
    # tuned within the configured budget, every imbalance strategy compared, served as ONNX
    assert r["tuning"]["trials"] == TRIALS and r["tuning"]["stopped_by"] == "trials"
    assert [i["strategy"] for i in r["imbalance"] if i["used"]] == ["none"]
    assert {i["strategy"] for i in r["imbalance"]} == {
        "none",
        "class_weight",
        "undersample",
        "oversample",
    }
    assert r["onnx"]["available"] and r["onnx"]["max_abs_difference"] <= 1e-5
    folder = entry.folder(churn["project"] / "artifacts")
    assert {"model.joblib", "model.onnx", "card.md", "card.html"} <= {
        f.name for f in folder.iterdir()
    }
    assert f"| AUC | {r['test']['auc']:.4f} |" in (folder / "card.md").read_text()
    s = registry.summary(churn["project"] / "artifacts", entry)
    assert len(s["gains"]) == 10 and s["gains"][0]["lift"] > s["gains"][-1]["lift"]
    assert s["importance"] and s["importance"][0]["mean_abs_shap"] > 0


def test_onnx_artefact_scores_like_the_native_model(churn: dict[str, Any]) -> None:
    """The stored graph, on customers as of a later date than any it saw (categories,
    missing values and all), gives the native scores to 1e-5."""
    from custintel.models import onnx
    from custintel.models.dataset import feature_frame

    model, frame = churn["model"], churn["frame"]
    graph = churn["entry"].folder(churn["project"] / "artifacts") / "model.onnx"
    session = onnx.session(graph.read_bytes())
    X = feature_frame(frame, model.features, model.categories)
    assert any(isinstance(X[c].dtype, pd.CategoricalDtype) for c in X) and X.isna().any().any()
    gap = abs(onnx.predict(session, X) - model.predict(X)).max()
    assert gap <= 1e-5, gap


def test_the_onnx_summary_alone_encodes_a_row(churn: dict[str, Any]) -> None:
    """A server needs only summary.json and model.onnx: the features in order and each
    category's levels, whose positions are the codes the graph reads."""
    from custintel.core import registry
    from custintel.models import onnx

    entry, frame = churn["entry"], churn["frame"].head(500)
    info = registry.summary(churn["project"] / "artifacts", entry)["onnx"]
    assert info["available"] and info["input"] == onnx.INPUT
    X = np.full((len(frame), len(info["features"])), np.nan)
    for j, name in enumerate(info["features"]):
        values = frame[name]
        if name in info["categories"]:
            code = {v: i for i, v in enumerate(info["categories"][name])}
            X[:, j] = [code.get(v, np.nan) if isinstance(v, str) else np.nan for v in values]
        else:
            X[:, j] = pd.to_numeric(values, errors="coerce").astype(float)
    session = onnx.session(
        (entry.folder(churn["project"] / "artifacts") / "model.onnx").read_bytes()
    )
    by_hand = session.run([onnx.OUTPUT], {onnx.INPUT: X})[0].ravel()
    assert np.abs(by_hand - churn["model"].predict_frame(frame)).max() <= 1e-5


def test_one_customer_scores_as_the_batch_does(churn: dict[str, Any]) -> None:
    """The scoring function the batch uses answers for a few rows (the real-time path)
    with the same score, decile and reasons as for the whole population."""
    from custintel.models.scoring import decile_cutoffs, score_customers, score_rows

    model, frame = churn["model"], churn["frame"].head(4000)
    words = {f: f.replace("_", " ") for f in model.features}
    batch = score_customers(model, frame, words, chunk_rows=5_000, exact_reasons_rows=10**6)
    picks = [0, 7, 123, len(frame) // 2, len(frame) - 1]
    cutoffs = decile_cutoffs(batch.score)
    few = score_rows(model, frame.iloc[picks], words, cutoffs)
    assert np.abs(few.score - batch.score[picks]).max() < 1e-12
    # a score tied with another decile's lowest takes the better decile of the two
    for got, want, score in zip(few.decile, batch.decile[picks], few.score, strict=True):
        assert got == want or (got == want - 1 and score in cutoffs)
    assert few.reasons == [batch.reasons[i] for i in picks]
    assert sorted(set(batch.tier)) == ["high", "low", "medium"]


def test_bad_requests_say_what_is_missing(churn: dict[str, Any], runner) -> None:
    with (
        Project.open(churn["project"]) as p,
        pytest.raises(StageError, match=r"no training table features.train_purchase_30d"),
    ):
        p.model_train("purchase_30d")
    frame = churn["frame"].drop(columns=["purchase_count"])
    with pytest.raises(StageError, match="purchase_count missing"):
        churn["model"].predict_frame(frame)
    r = runner.invoke(app, ["model", "list", "-p", str(churn["project"]), "--json"])
    assert r.exit_code == 0, r.output
    names = {row["name"] for row in json.loads(r.stdout)}
    assert "churn_90d" in names


def test_promote_by_gates_then_score_everyone_with_reasons(
    churn: dict[str, Any], tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    shutil.copytree(churn["project"], project)
    with Project.open(project) as p:
        with pytest.raises(StageError, match="no champion yet"):
            p.score("churn_90d", AS_OF)
        p.config = p.config.model_copy(
            update={"models": p.config.models.model_copy(update={"gates": {"auc": 0.99}})}
        )
        with pytest.raises(StageError, match=r"not promoted: out of time auc 0\.\d+ < 0\.99"):
            p.model_promote("churn_90d", 1)
        p.config = p.config.model_copy(
            update={"models": p.config.models.model_copy(update={"gates": {"auc": 0.7}})}
        )
        assert p.model_promote("churn_90d", 1)["champion"] == 1
        first = p.score("churn_90d", AS_OF)
        again = p.score("churn_90d", AS_OF)  # the same date again: replaced, not added
        scores = p.warehouse.table("scores", "churn_90d").execute()
    assert first["customers"] == again["customers"] == len(scores) == scores.customer_id.nunique()
    assert first["customers"] + first["opted_out"] >= len(churn["frame"]) - 5
    assert sorted(scores.decile.unique()) == list(range(1, 11))
    by_decile = scores.groupby("decile").score.mean()
    assert by_decile.is_monotonic_decreasing
    assert set(scores.tier) == {"high", "medium", "low"}
    top = scores.sort_values("score", ascending=False).iloc[0]
    assert 1 <= len(json.loads(top.reasons)) <= 3
    assert all(": " in r for r in json.loads(top.reasons))
    # past models.exact_reasons_rows, reasons come from binned SHAP dependence
    with Project.open(project) as p:
        p.config = p.config.model_copy(
            update={"models": p.config.models.model_copy(update={"exact_reasons_rows": 1000})}
        )
        binned = p.score("churn_90d", AS_OF)
        quick = p.warehouse.table("scores", "churn_90d").execute()
        listed = {t["table"]: t["rows"] for t in p.status()["tables"]}
    assert listed["scores.churn_90d"] == len(quick)  # status (and the report index) list scores
    assert binned["reasons"] == "binned SHAP dependence" and binned["reason_agreement"] > 0.7
    assert (quick.set_index("customer_id").score == scores.set_index("customer_id").score).all()

    def first(t: pd.DataFrame) -> pd.Series:
        return t.set_index("customer_id").reasons.map(
            lambda r: (json.loads(r) or [""])[0].split(":")[0]
        )

    approx, exact = first(quick), first(scores)
    assert (approx.loc[exact.index] == exact).mean() > 0.7
    # the scores as of the date equal the registered model's own predictions
    mine = pd.Series(churn["model"].predict_frame(churn["frame"]), index=churn["frame"].customer_id)
    stored = scores.set_index("customer_id").score
    assert (abs(mine.loc[stored.index] - stored) < 1e-9).all()


def test_threshold_table_report_page_and_a_rerun_that_changes_nothing(
    churn: dict[str, Any], tmp_path: Path, runner
) -> None:
    from custintel.report import write_reports

    project = tmp_path / "shop"
    shutil.copytree(churn["project"], project)
    r = runner.invoke(
        app,
        [
            "model",
            "threshold",
            "churn_90d",
            "-p",
            str(project),
            "--cost",
            "2",
            "--value",
            "50",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)
    rows = pd.DataFrame(t["rows"]).set_index("share")
    assert t["cost_per_contact"] == 2 and rows.loc[1.0, "volume"] == t["customers"]
    assert rows.loc[0.1, "observed_positives"] / rows.loc[0.1, "volume"] > (
        rows.loc[1.0, "observed_positives"] / rows.loc[1.0, "volume"]
    )
    with Project.open(project) as p:
        again = p.model_train("churn_90d")
        assert again["unchanged"] and again["version"] == churn["result"]["version"]
        index = write_reports(p)
    page = (index.parent / "models.html").read_text()
    for title in (
        "churn_90d v1",
        "ROC",
        "Cumulative gains",
        "Reliability",
        "mean |SHAP|",
        "What if",
        f"Tuning: {TRIALS} Optuna trials",
        "Class imbalance",
        "Model card",
    ):
        assert title in page, title


def test_a_worse_challenger_is_not_promoted_and_rollback_needs_only_the_gates(
    churn: dict[str, Any], tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    shutil.copytree(churn["project"], project)
    with Project.open(project) as p:
        p.model_promote("churn_90d", 1)
        weak = p.config.models.model_copy(
            update={
                "algorithms": ["lightgbm"],
                "lightgbm": {"num_leaves": 2, "n_estimators": 3},
                "gates": {"auc": 0.5},  # passes the gates, so only the comparison refuses it
            }
        )
        p.config = p.config.model_copy(update={"models": weak})
        v2 = p.model_train("churn_90d")["version"]
        c = p.model_compare("churn_90d")
        assert (c["champion"], c["challenger"], c["as_of"]) == (1, v2, "2025-03-31")
        assert c["challenger_auc"] < c["champion_auc"] and c["ci_high"] < 0 and not c["better"]
        own = p.model_evaluate("churn_90d", 1, dt.date(2025, 3, 31))
        assert own["out_of_time"] and abs(own["metrics"]["auc"] - c["champion_auc"]) < 1e-9
        with pytest.raises(StageError, match=r"v2 is not promoted: against the champion v1"):
            p.model_promote("churn_90d", v2)
        inside = p.model_evaluate("churn_90d", 1, dt.date(2024, 12, 31))
        assert not inside["out_of_time"] and "not out of time" in inside["warning"]
        # a better one (the champion's own settings, another seed) is not needed to
        # test rollback: make v2 the champion by hand, then go back to v1
        registry.set_alias(p.warehouse, "churn_90d", "champion", v2)
        back = p.model_promote("churn_90d", 1)
        assert back["champion"] == 1 and back["previous"] == v2 and back["comparison"] is None


def test_your_own_table_with_a_leak(tmp_path: Path, runner) -> None:
    """The Hillstrom e-mail test as a prepared table: visits are predicted from the
    customers' history; a column made from the outcome is caught as a leak."""
    import numpy as np

    from tests.conftest import SHARED_DATA

    source = SHARED_DATA / "hillstrom.csv"
    if not source.exists():
        pytest.skip(f"{source} is not here")
    table = pd.read_csv(source).drop(columns=["conversion", "spend"])
    table["visit_logged"] = table.visit * 2 + np.random.default_rng(0).normal(0, 0.1, len(table))
    table["order_id"] = np.arange(len(table))
    path = tmp_path / "hillstrom.parquet"
    table.to_parquet(path)
    project = tmp_path / "p"
    runner.invoke(app, ["init", str(project)])
    r = runner.invoke(
        app,
        [
            "model",
            "train",
            "visit",
            "-p",
            str(project),
            "--table",
            str(path),
            "--target",
            "visit",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["leaks"] == ["visit_logged"]
    assert any("order_id: an identifier" in n for n in out["notes"])
    assert 0.6 < out["test"]["auc"] < 0.75  # e-mail visits are hard to predict
    assert out["test"]["ece"] < 0.02 and out["rows"]["test"] == 12_800
    with Project.open(project) as p:
        entry = registry.get(p.warehouse, "visit")
        model = registry.load(p.artifacts_dir, entry)
    assert entry.feature_set == "table:hillstrom.parquet"
    assert set(model.categories) == {"channel", "zip_code", "history_segment", "segment"}
    r = runner.invoke(
        app,
        ["model", "train", "visit", "-p", str(project), "--table", str(path), "--target", "nope"],
    )
    assert r.exit_code == 1 and "no column 'nope'" in r.output


def test_the_model_never_sees_data_after_its_training_dates(
    churn: dict[str, Any], tmp_path: Path
) -> None:
    """Change what happened on or after the test snapshot (2025-03-31): delete most later
    orders (the last weeks stay, so labels still have their horizon) and triple the rest,
    delete every later e-mail, web, ticket, consent and contact event. Rebuild the
    training table and train again: the fitted model is the same, because training and
    validation rows (features before their dates, labels up to 90 days after 2024-12-31)
    end before it. Only the out-of-time test, which reads what followed, changes."""
    from custintel.core.contracts import CONTRACTS

    project = tmp_path / "shop"
    shutil.copytree(churn["project"], project)
    # one untuned LightGBM, trained before and after the change: what is compared is the
    # data the model learns from, not the search (test_models_serving holds it seeded)
    with_quick_models(project)
    cut = "2025-03-31"
    with Project.open(project) as p:
        first = p.model_train("churn_90d", force=True)
        model_before = registry.load(p.artifacts_dir, registry.get(p.warehouse, "churn_90d"))
        wh = p.warehouse
        for name, contract in CONTRACTS.items():
            if name not in ("customers", "orders") and wh.exists("clean", name):
                wh.delete_where("clean", name, f"{contract.timestamp} >= TIMESTAMP '{cut}'")
        later = f"order_ts >= TIMESTAMP '{cut}'"
        wh.delete_where("clean", "orders", f"{later} AND order_ts < TIMESTAMP '2025-06-01'")
        wh.sql(f"UPDATE clean.orders SET amount = amount * 3 WHERE {later}")
        old_rows = p.warehouse.table("features", "train_churn_90d").execute()
        p.features_training_set("churn_90d", SNAPSHOTS)
        new_rows = p.warehouse.table("features", "train_churn_90d").execute()
        again = p.model_train("churn_90d", force=True)
        model = registry.load(p.artifacts_dir, registry.get(p.warehouse, "churn_90d"))
    frame = churn["frame"]
    before = model_before.predict_frame(frame)
    after = model.predict_frame(frame)
    # the rows it learns from are the same (to the last bits of parallel float sums)
    learned = [str(d) for d in SNAPSHOTS[:-1]]
    a, b = (
        t[t.as_of.astype(str).str[:10].isin(learned)].sort_values(
            ["as_of", "customer_id"], ignore_index=True
        )
        for t in (old_rows, new_rows)
    )
    assert len(a) == len(b) > 10_000
    for c in a.columns:
        if pd.api.types.is_numeric_dtype(a[c]) and not pd.api.types.is_bool_dtype(a[c]):
            gap = (a[c].astype(float) - b[c].astype(float)).abs().max()
            assert not gap > 1e-9, c
        else:
            assert ((a[c] == b[c]) | (a[c].isna() & b[c].isna())).all(), c
    assert abs(before - after).max() < 1e-12
    assert again["test"]["positive_rate"] > first["test"]["positive_rate"]


def test_other_targets_including_a_rare_high_value_purchase(
    churn: dict[str, Any], tmp_path: Path
) -> None:
    """Conversion, cross-sell and a rare high-value purchase train the same way; the rare
    one is checked against what the simulator's people really spent afterwards."""
    project = tmp_path / "shop"
    shutil.copytree(churn["project"], project)
    with Project.open(project) as p:
        quick = p.config.models.model_copy(update={"tuning": TuningConfig(trials=0)})
        p.config = p.config.model_copy(update={"models": quick})
        results = {}
        for label in ("purchase_90d", "new_category_90d", "high_value_90d"):
            p.features_training_set(label, SNAPSHOTS)
            results[label] = p.model_train(label)
        model = registry.load(p.artifacts_dir, registry.get(p.warehouse, "high_value_90d"))
        p.features_training_set("spend_90d", SNAPSHOTS)
        with pytest.raises(StageError, match=r"has [0-9,]+ values .*needs two"):
            p.model_train("spend_90d")
    for label in ("purchase_90d", "new_category_90d"):
        assert results[label]["test"]["auc"] > 0.7, (label, results[label]["test"])
    rare = results["high_value_90d"]
    assert rare["test"]["positive_rate"] < 0.1 and rare["test"]["auc"] > 0.8, rare["test"]
    assert len(rare["imbalance"]) == 4 and rare["onnx"]["available"]
    linked = persona_of_customers(churn["project"])
    people = linked.groupby("customer_id").agg(
        people=("person_id", "nunique"), spent=("spend_next_90d", "first")
    )
    people = people[people.people == 1]
    frame = churn["frame"]
    scored = pd.Series(model.predict_frame(frame), index=frame.customer_id, name="score")
    both = people.join(scored, how="inner")
    big = (both.spent >= 500).astype(int)
    assert 0.01 < big.mean() < 0.15
    assert roc_auc_score(big, both.score) > 0.8
