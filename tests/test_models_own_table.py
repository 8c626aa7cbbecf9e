"""Models on a table of your own: an outside telecom churn table (3,333 rows, the target
spelled T/F, no time column) trained, estimated honestly and scored through the command
line, natively and with ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.pipeline.project import init_project
from tests.outside import churn_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("own")
    project = root / "shop"
    init_project(project)
    frame = churn_table.table(3333, seed=1)
    truth = frame.pop("p_true")
    frame.to_csv(root / "churn.csv", index=False)
    result = CliRunner().invoke(
        app,
        [
            "model", "train", "churn", "--project", str(project),
            "--table", str(root / "churn.csv"), "--target", "Churn",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(app, ["model", "list", "--project", str(project), "--json"])
    return {
        "root": root,
        "project": project,
        "frame": frame,
        "truth": truth,
        "plain": " ".join(result.output.split()),
        "versions": json.loads(listed.stdout),
    }


def _summary(project: Path) -> dict:
    (entry,) = (project / "artifacts" / "churn").glob("v1/summary.json")
    return json.loads(entry.read_text())


def test_a_small_table_is_trained_as_well_as_lightgbm_defaults_and_estimated_honestly(
    trained: dict,
) -> None:
    s = _summary(trained["project"])
    assert s["split"]["kind"] == "crossfit"
    frame, y = trained["frame"], (trained["frame"]["Churn"] == "T").to_numpy().astype(int)
    oracle = roc_auc_score(y, trained["truth"])
    ours = s["test"]
    # LightGBM with its defaults on five folds of the same rows: the peer to match.
    X = frame.drop(columns=["Churn", "Phone"])
    for c in ("State", "Intl Plan", "VMail Plan"):
        X[c] = X[c].astype("category")
    auc, brier = [], []
    for a, b in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        p = LGBMClassifier(verbose=-1, random_state=0).fit(X.iloc[a], y[a]).predict_proba(X.iloc[b])
        auc.append(roc_auc_score(y[b], p[:, 1]))
        brier.append(brier_score_loss(y[b], p[:, 1]))
    assert ours["auc"] >= np.mean(auc) - 0.005, (ours["auc"], np.mean(auc), oracle)
    assert ours["brier"] <= np.mean(brier) + 0.002, (ours["brier"], np.mean(brier))
    assert ours["auc"] > oracle - 0.06, (ours["auc"], oracle)
    # The estimate is out of fold over every row, with the folds' spread.
    est = s["estimate"]
    assert len(est["folds"]) == 5 and sum(f["rows"] for f in est["folds"]) == len(y)
    assert abs(est["auc_mean"] - ours["auc"]) <= max(2 * est["auc_sd"], 0.01)
    assert s["calibration"] in ("none", "sigmoid", "isotonic")
    # No minutes of tuning on a few thousand rows.
    assert s["tuning"] is None and est["seconds"] < 120


def test_the_words_fit_a_table_without_time(trained: dict) -> None:
    plain = trained["plain"]
    assert "out of fold" in plain and "out of time" not in plain
    card = (trained["project"] / "artifacts" / "churn" / "v1" / "card.md").read_text()
    assert "Out-of-fold performance" in card and "snapshot" not in card.lower()
    assert "opted out" not in card


def test_new_rows_are_scored_natively_and_by_onnx_with_their_id(trained: dict) -> None:
    root, project = trained["root"], str(trained["project"])
    fresh = churn_table.table(500, seed=9).drop(columns=["p_true", "Churn"])
    fresh.to_csv(root / "new.csv", index=False)
    runner = CliRunner()
    outs = {}
    for engine in ("native", "onnx"):
        out = root / f"scores_{engine}.csv"
        args = ["score", "churn", "--project", project, "--table", str(root / "new.csv")]
        args += ["--out", str(out), "--id", "Phone", "--json"]
        result = runner.invoke(app, args + (["--onnx"] if engine == "onnx" else []))
        assert result.exit_code == 0, result.output
        outs[engine] = pd.read_csv(out)
    native, onnx = outs["native"], outs["onnx"]
    assert list(native.columns) == ["Phone", "score"] and len(native) == 500
    assert list(native.Phone) == list(fresh.Phone)
    assert np.max(np.abs(native.score - onnx.score)) < 1e-5
    # The warehouse scoring path says how to score such a model.
    result = runner.invoke(app, ["score", "churn", "--project", project, "--as-of", "2025-01-01"])
    assert result.exit_code != 0 and "--table FILE --out FILE" in result.output


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: f.drop(columns=["Day Mins"]), ["lacks the training column", "'Day Mins'"]),
        (lambda f: f.assign(State=["ZZ", *f.State[1:]]), ["'State'", "'ZZ'", "never saw"]),
        (
            lambda f: f.assign(**{"Eve Mins": ["lots", *f["Eve Mins"][1:]]}),
            ["'Eve Mins'", "'lots'"],
        ),
    ],
)
def test_a_scoring_table_that_does_not_fit_is_refused_by_name(
    trained: dict, change, words: list[str]
) -> None:
    root = trained["root"]
    bad = change(churn_table.table(50, seed=4).drop(columns=["p_true", "Churn"]))
    bad.to_csv(root / "bad.csv", index=False)
    result = CliRunner().invoke(
        app,
        ["score", "churn", "--project", str(trained["project"]), "--table", str(root / "bad.csv"),
         "--out", str(root / "never.csv")],
    )  # fmt: skip
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    for word in words:
        assert word in text, text
    assert not (root / "never.csv").exists()
