"""Uplift models: who is persuadable, learned from past randomized campaigns.

The learners are causalml's meta-learners on LightGBM regressors (not rewritten here):

- **T-learner**: one outcome model on the treated, one on the control; the uplift is the
  difference of their predictions.
- **X-learner** (Künzel et al. 2019): imputes each customer's effect from the other
  group's outcome model, learns those effects, and blends the two by the propensity.
- **DR-learner** (Kennedy 2020): regresses a doubly-robust pseudo-outcome on the
  features.

In a randomized campaign the probability of being treated is known (the design: 1 minus
the holdout share). It is always passed to the learners that use it and never
re-estimated: a propensity model fitted on randomized data only learns noise, and the
doubly-robust learner divides by it (on one public experiment a re-estimated propensity
swung its average effect from -38 to +74 against a truth of 15).

Every learner is judged out of fold: the customers are split into folds, each fold scored
by models that never saw it, and the out-of-fold scores ranked (``uplift_metrics``). The
learner with the largest out-of-fold policy value of treating the top share wins, and is
refitted on everyone.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from custintel.measure.uplift_metrics import (
    auuc,
    policy_value,
    qini_curve,
    uplift_by_decile,
)

LEARNERS = ("t", "x", "dr")
NAMES = {"t": "T-learner", "x": "X-learner", "dr": "DR-learner"}

DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 50,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "verbose": -1,
    "n_jobs": 2,
}
"""Small, regularized trees: effects are a small difference of two noisy outcomes."""


def _learner(kind: str, seed: int, params: dict[str, Any] | None) -> Any:
    from causalml.inference.meta import BaseDRRegressor, BaseTRegressor, BaseXRegressor
    from lightgbm import LGBMRegressor

    base = LGBMRegressor(**{**DEFAULT_PARAMS, **(params or {}), "random_state": seed})
    if kind == "t":
        return BaseTRegressor(learner=base)
    if kind == "x":
        return BaseXRegressor(learner=base)
    if kind == "dr":
        return BaseDRRegressor(learner=base)
    raise ValueError(f"unknown learner {kind!r}; choose from {', '.join(LEARNERS)}")


@dataclass
class Fitted:
    """A learner fitted on everyone: predicts the uplift of new customers, averaged over
    its bag of models (each with its own seed: an effect is a small difference of two
    noisy fits, and averaging several steadies the ranking)."""

    kind: str
    models: list[Any]
    features: list[str]
    p: float = 0.5  # the X-learner blends its two effect models by it
    sleeping_below: float = -np.inf  # see sleeping_threshold

    def predict(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        values = x[self.features].to_numpy("float64") if isinstance(x, pd.DataFrame) else x
        out = np.zeros(len(values))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            for model in self.models:
                if self.kind == "x":
                    blend = np.full(len(values), self.p)
                    out += np.asarray(model.predict(values, p=blend)).reshape(-1)
                else:
                    out += np.asarray(model.predict(values)).reshape(-1)
        return out / len(self.models)


def fit(
    x: np.ndarray,
    treated: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    kind: str,
    *,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    features: list[str] | None = None,
    bag: int = 1,
) -> Fitted:
    """One learner on all rows (``p``: each row's known probability of treatment), as a
    bag of ``bag`` fits with seeds ``seed * 1000 + i``."""
    w = np.asarray(treated, dtype=int)
    models = []
    for i in range(bag):
        model = _learner(kind, seed * 1000 + i, params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            if kind == "t":
                model.fit(x, treatment=w, y=y)
            else:
                model.fit(x, treatment=w, y=y, p=p)
        models.append(model)
    names = features or [f"x{i}" for i in range(x.shape[1])]
    return Fitted(kind, models, names, float(np.mean(p)))


def out_of_fold(
    x: np.ndarray,
    treated: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    kind: str,
    *,
    folds: int = 3,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> np.ndarray:
    """Each row's uplift predicted by a model fitted on the other folds (folds stratified
    by treatment, so each keeps the design's split)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.empty(len(y))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in split.split(x, np.asarray(treated, dtype=int)):
        m = fit(x[train], treated[train], y[train], p[train], kind, seed=seed, params=params)
        out[test] = m.predict(x[test])
    return out


@dataclass
class Comparison:
    """The learners side by side, out of fold."""

    table: pd.DataFrame  # one row per learner
    scores: dict[str, np.ndarray]
    qini: pd.DataFrame  # learner, share, incremental, random
    deciles: pd.DataFrame  # learner, decile, ...
    chosen: str
    top: float
    sleeping_below: float = -np.inf


def sleeping_threshold(score: np.ndarray, deciles: pd.DataFrame) -> float:
    """The predicted uplift below which customers are sleeping dogs: the top of the run of
    lowest deciles whose observed (out-of-fold, randomized) effect is negative, capped at
    zero. A prediction just below zero is mostly noise around customers the campaign does
    not move at all; the observed deciles say where the harm really is. Minus infinity
    when the lowest decile is not harmed."""
    d = deciles.sort_values("decile", ascending=False)
    harmed = []
    for r in d.itertuples():
        if not (r.observed < 0):
            break
        harmed.append(int(r.decile))
    if not harmed:
        return -np.inf
    order = np.sort(np.asarray(score, dtype="float64"))
    n_low = round(len(order) * len(harmed) / 10)
    return float(min(order[n_low - 1], 0.0)) if n_low >= 1 else -np.inf


def compare(
    x: np.ndarray,
    treated: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    *,
    learners: tuple[str, ...] = LEARNERS,
    folds: int = 3,
    seed: int = 0,
    top: float = 0.3,
    params: dict[str, Any] | None = None,
    response: np.ndarray | None = None,
) -> Comparison:
    """Every learner's out-of-fold ranking: AUUC, the policy value of treating the top
    ``top`` share and of treating everyone, and (when ``response`` scores are given, a
    response propensity to compare with) the same for ranking by response."""
    treated = np.asarray(treated, dtype=bool)
    rows, scores, curves, deciles = [], {}, [], []
    everyone = policy_value(np.zeros(len(y)), treated, y, p, 1.0)
    candidates: dict[str, np.ndarray] = {}
    for kind in learners:
        candidates[kind] = out_of_fold(
            x, treated, y, p, kind, folds=folds, seed=seed, params=params
        )
    if response is not None:
        candidates["response"] = np.asarray(response, dtype="float64")
    for kind, s in candidates.items():
        scores[kind] = s
        rows.append(
            {
                "learner": kind,
                "name": NAMES.get(kind, "response propensity"),
                "auuc": auuc(s, treated, y),
                "policy_value_top": policy_value(s, treated, y, p, top),
                "policy_value_all": everyone,
                "mean_predicted": float(np.mean(s)) if kind != "response" else np.nan,
                "negative_share": float(np.mean(s < 0)) if kind != "response" else np.nan,
            }
        )
        curves.append(qini_curve(s, treated, y).assign(learner=kind))
        deciles.append(uplift_by_decile(s, treated, y).assign(learner=kind))
    table = pd.DataFrame(rows)
    models = table[table.learner != "response"]
    chosen = str(models.sort_values(["policy_value_top", "auuc"], ascending=False).learner.iloc[0])
    dec = pd.concat(deciles, ignore_index=True)
    below = sleeping_threshold(scores[chosen], dec[dec.learner == chosen])
    return Comparison(table, scores, pd.concat(curves, ignore_index=True), dec, chosen, top, below)
