"""Training on a table without dates: every choice by cross-validation, an honest
estimate by cross-fitting.

A table of a few thousand rows cannot spare a fifth for early stopping and another for
calibration (an isotonic curve fitted on 270 rows keeps a few dozen distinct scores).
So, without a time column:

- **the procedure** (what training does with the rows it is given): each learner's
  out-of-fold scores come from ``FOLDS``-fold cross-validation on those rows (LightGBM
  stopping early on the fold it is not trained on, the number of trees then set to the
  folds' mean); the learner with the higher out-of-fold AUC is kept and refitted on all
  the rows; calibration (none, sigmoid or isotonic) is chosen by the Brier score of a
  second cross-validation over the out-of-fold scores and fitted on all of them, so the
  calibrator never sees a score of a row its learner was trained on;
- **the estimate**: the whole procedure is run ``FOLDS`` times, each time without one
  outer fold, and scored on that fold; the figures reported are those of the pooled
  out-of-fold predictions, with the spread of the folds' AUC (nested cross-validation:
  no row ever judges a model that learned from it);
- **the model kept**: the procedure run on all rows.

LightGBM's Optuna search runs only when the rows can pay for it: ``trials_for`` scales
the configured budget with the rows, so a table of a few thousand rows is fitted with
sound small-data settings in seconds instead of minutes of search that over-fits the
early-stopping rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from custintel.core.config import ModelsConfig
from custintel.models.algorithms import fit, lightgbm, logistic
from custintel.models.tune import tune

FOLDS = 5
ROWS_PER_TRIAL = 2500
"""Rows a table needs per Optuna trial beyond the first 5,000 (20 trials from 55,000)."""
Progress = Callable[[str, int, int], None]


@dataclass
class Sigmoid:
    """p = 1 / (1 + exp(a * score + b)), as scikit-learn's sigmoid calibration writes it
    (so the ONNX export reads it the same way); a = -1, b = 0 is no calibration."""

    a_: float = -1.0
    b_: float = 0.0

    def predict(self, score: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(self.a_ * np.asarray(score, float) + self.b_))


@dataclass
class CrossFitted:
    """A learner fitted on all rows with a calibrator fitted on its out-of-fold scores
    (the raw margin). ``method`` is ``sigmoid`` (also for no calibration) or
    ``isotonic``."""

    base: Any
    method: str
    calibrator: Any
    classes_: np.ndarray = field(default_factory=lambda: np.array([0, 1]))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(self.calibrator.predict(self.base.decision_function(X)), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])


def trials_for(rows: int, cfg: ModelsConfig) -> int:
    """The Optuna budget a table of ``rows`` can pay for: none up to 5,000 rows, one
    trial per ``ROWS_PER_TRIAL`` more, at most the configured number."""
    return int(min(cfg.tuning.trials, max(0, (rows - 5000) // ROWS_PER_TRIAL)))


def small_data_params(rows: int, cfg: ModelsConfig) -> dict[str, Any]:
    """LightGBM settings for ``rows`` training rows: leaves of at least 20 rows (the
    library's default) up to 100 on large tables; configured settings win."""
    return {"min_child_samples": int(min(100, max(20, rows // 100))), **cfg.lightgbm}


def _folds(y: np.ndarray, seed: int) -> StratifiedKFold:
    smallest = int(np.bincount(y).min())
    return StratifiedKFold(min(FOLDS, max(2, smallest)), shuffle=True, random_state=seed)


def out_of_fold(
    algorithm: str, X: pd.DataFrame, y: np.ndarray, rows: np.ndarray, params: dict, seed: int
) -> tuple[np.ndarray, list[int]]:
    """Out-of-fold raw scores of ``algorithm`` over ``rows``, and LightGBM's best number
    of trees in each fold."""
    scores = np.empty(len(rows))
    trees = []
    for a, b in _folds(y[rows], seed).split(rows, y[rows]):
        tr, te = rows[a], rows[b]
        model = fit(
            algorithm,
            X.iloc[tr],
            y[tr],
            X.iloc[te],
            y[te],
            params=params,
            seed=seed,
            class_weight=False,
        )
        if algorithm == "lightgbm":
            trees.append(int(model.best_iteration_ or model.n_estimators))
        scores[b] = model.decision_function(X.iloc[te])
    return scores, trees


def choose_calibration(score: np.ndarray, y: np.ndarray, seed: int) -> tuple[str, Any, dict]:
    """None, sigmoid or isotonic, whichever gives the lowest Brier score on scores it
    was not fitted on (a cross-validation over the out-of-fold scores), then fitted on
    all of them. Ties keep the simpler."""

    def make(kind: str, s: np.ndarray, t: np.ndarray) -> Any:
        if kind == "none":
            return Sigmoid()
        if kind == "sigmoid":
            lr = LogisticRegression(C=1e6).fit(s.reshape(-1, 1), t)
            return Sigmoid(-float(lr.coef_[0, 0]), -float(lr.intercept_[0]))
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, t)

    briers: dict[str, float] = {}
    for kind in ("none", "sigmoid", "isotonic"):
        p = np.empty(len(y))
        for a, b in _folds(y, seed).split(score, y):
            p[b] = make(kind, score[a], y[a]).predict(score[b])
        briers[kind] = float(brier_score_loss(y, np.clip(p, 0, 1)))
    best = min(
        briers, key=lambda k: (round(briers[k], 6), ["none", "sigmoid", "isotonic"].index(k))
    )
    method = "isotonic" if best == "isotonic" else "sigmoid"
    return best, (method, make(best, score, y)), briers


@dataclass
class Procedure:
    """What one run of the training procedure chose and fitted."""

    model: CrossFitted
    algorithm: str
    calibration: str
    oof_auc: dict[str, float]
    briers: dict[str, float]
    trees: int | None
    params: dict[str, Any]
    tuning: dict[str, Any] | None


def procedure(X: pd.DataFrame, y: np.ndarray, rows: np.ndarray, cfg: ModelsConfig) -> Procedure:
    """Choose, fit and calibrate on ``rows`` only (see the module's docstring)."""
    oof: dict[str, np.ndarray] = {}
    trees: dict[str, list[int]] = {}
    aucs: dict[str, float] = {}
    params = small_data_params(len(rows), cfg)
    tuning = None
    trials = trials_for(len(rows), cfg)
    for algorithm in cfg.algorithms:
        if algorithm == "lightgbm" and trials:
            learn, judge = train_test_split(
                rows, test_size=0.2, random_state=cfg.seed, stratify=y[rows]
            )
            found = tune(
                X.iloc[learn],
                y[learn],
                X.iloc[judge],
                y[judge],
                base=params,
                trials=trials,
                timeout=cfg.tuning.timeout_s,
                seed=cfg.seed,
                pruning=cfg.tuning.pruning,
            )
            params = found.params
            tuning = {
                "trials": found.trials,
                "best_params": found.params,
                "best_auc": found.best_auc,
                "seconds": round(found.seconds, 1),
                "stopped_by": found.stopped_by,
                "budget": {**cfg.tuning.model_dump(), "trials": trials},
                "rows": len(learn),
            }
        oof[algorithm], trees[algorithm] = out_of_fold(
            algorithm, X, y, rows, params if algorithm == "lightgbm" else {}, cfg.seed
        )
        aucs[algorithm] = float(roc_auc_score(y[rows], oof[algorithm]))
    best = max(aucs, key=lambda a: (aucs[a], a))
    n_trees = None
    if best == "lightgbm":
        n_trees = max(1, round(float(np.mean(trees[best]))))
        base = lightgbm({**params, "n_estimators": n_trees}, cfg.seed).fit(X.iloc[rows], y[rows])
    else:
        base = logistic(cfg.seed, class_weight=False).fit(X.iloc[rows], y[rows])
    chosen, (method, calibrator), briers = choose_calibration(oof[best], y[rows], cfg.seed)
    return Procedure(
        CrossFitted(base, method, calibrator),
        best,
        chosen,
        aucs,
        briers,
        n_trees,
        params if best == "lightgbm" else {},
        tuning,
    )


@dataclass
class CrossFit:
    """The model kept, and the honest figures about it."""

    final: Procedure
    oof: np.ndarray
    """Each row's prediction by a procedure that never saw it."""
    folds: list[dict[str, Any]]
    seconds: float


def crossfit(
    X: pd.DataFrame,
    y: np.ndarray,
    cfg: ModelsConfig,
    *,
    name: str = "",
    progress: Progress | None = None,
) -> CrossFit:
    """Nested cross-fitting for the estimate, then the procedure on all rows."""
    began = time.perf_counter()
    oof = np.empty(len(y))
    folds = []
    outer = _folds(y, cfg.seed + 1)
    steps = outer.get_n_splits() + 1
    for k, (a, b) in enumerate(outer.split(np.zeros(len(y)), y)):
        if progress:
            progress(f"{name}: outer fold {k + 1} of {steps - 1}", k, steps)
        run = procedure(X, y, a, cfg)
        oof[b] = run.model.predict_proba(X.iloc[b])[:, 1]
        folds.append(
            {
                "fold": k + 1,
                "rows": len(b),
                "algorithm": run.algorithm,
                "calibration": run.calibration,
                "auc": float(roc_auc_score(y[b], oof[b])),
                "brier": float(brier_score_loss(y[b], oof[b])),
            }
        )
    if progress:
        progress(f"{name}: final fit on all rows", steps - 1, steps)
    final = procedure(X, y, np.arange(len(y)), cfg)
    return CrossFit(final, oof, folds, time.perf_counter() - began)
