"""Models on your own table: custintel's training procedure against LightGBM with default
settings, on the same five folds, on tables of 2,000-50,000 rows without a time column.

    python benchmarks/bench_own_table.py

Tables: an outside telecom churn table (tests/outside/churn_table.py, 3,333 and 20,000
rows, target ``Churn`` spelled T/F), and the Hillstrom e-mail test (../shared/data,
samples of 5,000 and 20,000 rows, target ``visit``, the other outcomes dropped).

For each table and each of five stratified folds (seed 0): custintel's procedure
(``custintel.models.crossfit.procedure``: learner, trees and calibration chosen by
cross-validation inside the training part) and ``LGBMClassifier()`` with its defaults
are fitted on the same four folds and scored on the fifth (AUC, Brier). Then the
estimate custintel reports for the whole table (its nested cross-fitting, as `model
train --table` runs it) is set against the folds' spread, and timed.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.outside import churn_table  # noqa: E402

from custintel.core.config import ModelsConfig  # noqa: E402
from custintel.models.crossfit import crossfit, procedure  # noqa: E402
from custintel.models.dataset import prepare  # noqa: E402

HILLSTROM = ROOT.parent / "shared" / "data" / "hillstrom.csv"


def tables() -> dict[str, tuple[pd.DataFrame, str]]:
    out = {
        "churn 3,333 (T/F)": (churn_table.table(3333, seed=1).drop(columns="p_true"), "Churn"),
        "churn 20,000 (T/F)": (churn_table.table(20000, seed=2).drop(columns="p_true"), "Churn"),
    }
    if HILLSTROM.exists():
        hill = pd.read_csv(HILLSTROM).drop(columns=["conversion", "spend"])
        out["hillstrom 5,000"] = (hill.sample(5000, random_state=3), "visit")
        out["hillstrom 20,000"] = (hill.sample(20000, random_state=4), "visit")
    return out


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    cfg = ModelsConfig()
    for label, (frame, target) in tables().items():
        ds = prepare(frame.reset_index(drop=True), target=target, time=None, id_column="")
        X, y = ds.X, ds.y
        ours, peer = {"auc": [], "brier": [], "s": []}, {"auc": [], "brier": [], "s": []}
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        for a, b in folds.split(np.zeros(len(y)), y):
            began = time.perf_counter()
            run = procedure(X, y, a, cfg)
            p = run.model.predict_proba(X.iloc[b])[:, 1]
            ours["s"].append(time.perf_counter() - began)
            ours["auc"].append(roc_auc_score(y[b], p))
            ours["brier"].append(brier_score_loss(y[b], p))
            began = time.perf_counter()
            model = LGBMClassifier(verbose=-1, random_state=0).fit(X.iloc[a], y[a])
            q = model.predict_proba(X.iloc[b])[:, 1]
            peer["s"].append(time.perf_counter() - began)
            peer["auc"].append(roc_auc_score(y[b], q))
            peer["brier"].append(brier_score_loss(y[b], q))
        began = time.perf_counter()
        reported = crossfit(X, y, cfg)
        seconds = time.perf_counter() - began
        est = roc_auc_score(y, reported.oof)
        mean, sd = np.mean(ours["auc"]), np.std(ours["auc"], ddof=1)
        print(
            f"{label}: rows {len(y):,}, positives {y.mean():.1%}\n"
            f"  custintel  AUC {mean:.4f} ± {sd:.4f}  Brier {np.mean(ours['brier']):.4f}  "
            f"{np.mean(ours['s']):.1f} s/fold\n"
            f"  LightGBM   AUC {np.mean(peer['auc']):.4f} ± {np.std(peer['auc'], ddof=1):.4f}  "
            f"Brier {np.mean(peer['brier']):.4f}  {np.mean(peer['s']):.2f} s/fold\n"
            f"  reported estimate (nested, whole table): AUC {est:.4f} "
            f"({'within' if abs(est - mean) <= sd else 'outside'} the folds' spread), "
            f"Brier {brier_score_loss(y, reported.oof):.4f}; {seconds:.1f} s for the whole "
            f"`model train --table` procedure; chose {reported.final.algorithm}, "
            f"calibration {reported.final.calibration}"
        )


if __name__ == "__main__":
    main()
