"""Training a propensity model the way it will be used: on the past, judged on the future.

Snapshots are split by date (``dataset.time_split``): the learners fit on the training
snapshots; the validation snapshot is halved (stratified) into rows for LightGBM's early
stopping and rows for calibration and for choosing the algorithm; the latest snapshot is
never touched until the out-of-time test. An average of the calibrated candidates is kept
as a third candidate when it beats each of them on validation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from custintel.core.config import ModelsConfig
from custintel.core.errors import StageError
from custintel.models import metrics
from custintel.models import onnx as onnx_export
from custintel.models.algorithms import calibrate, fit
from custintel.models.crossfit import FOLDS, crossfit
from custintel.models.dataset import Dataset, feature_frame, time_split
from custintel.models.resample import STRATEGIES, rows_for
from custintel.models.tune import tune

Progress = Callable[[str, int, int], None]
IMPORTANCE_ROWS = 20_000
SAMPLE_ROWS = 20_000
PARITY_ROWS = 20_000


@dataclass
class PropensityModel:
    """A calibrated model (or an average of several) with the features it expects."""

    name: str
    algorithm: str
    features: list[str]
    categories: dict[str, list[str]]
    members: list[Any] = field(default_factory=list)  # calibrated estimators, averaged

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict(feature_frame(frame, self.features, self.categories))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.mean([m.predict_proba(X)[:, 1] for m in self.members], axis=0)


@dataclass
class Trained:
    model: PropensityModel
    summary: dict[str, Any]
    onnx: bytes | None = None  # the serving graph, when every member converts


def _serving_graph(
    model: PropensityModel, rows: pd.DataFrame, seed: int
) -> tuple[onnx_export.Export, dict[str, Any]]:
    """The ONNX graph and what its summary says of it: whether there is one, its parity
    with the native model on up to ``PARITY_ROWS`` rows, and what it needs to encode a
    row by itself (the features in order and each category's levels, whose positions are
    the codes the graph reads)."""
    exported = onnx_export.export(model.members, model.features, model.categories)
    info: dict[str, Any] = {
        "available": exported.model is not None,
        "reason": exported.reason,
        "input": onnx_export.INPUT,
        "features": list(model.features),
        "categories": {c: list(v) for c, v in model.categories.items()},
    }
    if exported.model is not None:
        if len(rows) > PARITY_ROWS:
            rows = rows.sample(PARITY_ROWS, random_state=seed)
        info["max_abs_difference"] = onnx_export.parity(model.members, exported.model, rows)
        info["parity_rows"] = len(rows)
    return exported, info


def _importance(model: Any, X: pd.DataFrame, seed: int) -> list[dict[str, Any]]:
    """Gain importance and mean |SHAP| (LightGBM's ``pred_contrib``) per feature."""
    booster = getattr(model, "booster_", None)
    if booster is None:
        return []
    rows = X
    if len(X) > IMPORTANCE_ROWS:
        rows = X.sample(IMPORTANCE_ROWS, random_state=seed)
    contrib = booster.predict(rows, pred_contrib=True)
    shap = np.abs(contrib[:, :-1]).mean(axis=0)
    gain = booster.feature_importance(importance_type="gain")
    out = [
        {"feature": f, "gain": float(g), "mean_abs_shap": float(s)}
        for f, g, s in zip(booster.feature_name(), gain, shap, strict=True)
    ]
    return sorted(out, key=lambda r: -r["mean_abs_shap"])


def _random_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Without snapshot dates: 60 % training, 20 % validation, 20 % test, stratified."""
    rows = np.arange(len(y))
    rest, test_idx = train_test_split(rows, test_size=0.2, random_state=seed, stratify=y)
    train_idx, valid = train_test_split(rest, test_size=0.25, random_state=seed, stratify=y[rest])
    train_rows = np.zeros(len(y), bool)
    train_rows[train_idx] = True
    test = np.zeros(len(y), bool)
    test[test_idx] = True
    return train_rows, np.sort(valid), test


def _sample(y: np.ndarray, p: np.ndarray, seed: int) -> dict[str, list[float]]:
    """Outcomes and scores of up to ``SAMPLE_ROWS`` test customers, kept with the model for
    what-if tables at any cost and value."""
    rows = np.arange(len(y))
    if len(y) > SAMPLE_ROWS:
        rows = np.random.default_rng(seed).choice(len(y), SAMPLE_ROWS, replace=False)
    return {"y": [int(v) for v in y[rows]], "p": [round(float(v), 6) for v in p[rows]]}


def _ranges(X: pd.DataFrame, categorical: list[str]) -> dict[str, list[float]]:
    """Each numeric feature's smallest and largest value over the model's rows: the range
    the real-time service accepts a feature in before it refuses the row."""
    out = {}
    for c in X.columns:
        if c in categorical:
            continue
        col = pd.to_numeric(X[c], errors="coerce").astype(float)
        if col.notna().any():
            out[c] = [float(col.min()), float(col.max())]
    return out


def _subsample(rows: np.ndarray, y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` of ``rows``, stratified by the target, in their order."""
    if len(rows) <= limit:
        return rows
    picked, _ = train_test_split(rows, train_size=limit, random_state=seed, stratify=y[rows])
    return np.sort(picked)


def _tune(
    X: pd.DataFrame, y: np.ndarray, fit_rows: np.ndarray, stop: np.ndarray, cfg: ModelsConfig
) -> dict[str, Any]:
    """The Optuna search; on large tables trials learn from (and are judged on) a
    stratified sample, which keeps each trial quick."""
    rows = _subsample(fit_rows, y, cfg.tuning.sample_rows, cfg.seed)
    judge = _subsample(stop, y, cfg.tuning.sample_rows, cfg.seed)
    tuned = tune(
        X.iloc[rows],
        y[rows],
        X.iloc[judge],
        y[judge],
        base=dict(cfg.lightgbm),
        trials=cfg.tuning.trials,
        timeout=cfg.tuning.timeout_s,
        seed=cfg.seed,
        pruning=cfg.tuning.pruning,
    )
    return {
        "trials": tuned.trials,
        "best_params": tuned.params,
        "best_auc": tuned.best_auc,
        "seconds": round(tuned.seconds, 1),
        "stopped_by": tuned.stopped_by,
        "budget": cfg.tuning.model_dump(),
        "rows": len(rows),
    }


def _fit_calibrated(
    algorithm: str,
    strategy: str,
    X: pd.DataFrame,
    y: np.ndarray,
    rows: np.ndarray,
    stop: np.ndarray,
    cal: np.ndarray,
    params: dict[str, Any],
    cfg: ModelsConfig,
) -> tuple[Any, Any, np.ndarray]:
    """A learner fitted on ``rows`` (resampled or weighted by ``strategy``), stopped on
    ``stop`` and calibrated on ``cal``; with the targets it learned from."""
    rows_X, rows_y, extra = rows_for(strategy, X.iloc[rows], y[rows], cfg.seed)
    base = fit(
        algorithm,
        rows_X,
        rows_y,
        X.iloc[stop],
        y[stop],
        params={**params, **extra} if algorithm == "lightgbm" else params,
        seed=cfg.seed,
        class_weight=strategy == "class_weight",
    )
    return base, calibrate(base, X.iloc[cal], y[cal], cfg.calibration), rows_y


def _compare_imbalance(
    X: pd.DataFrame,
    y: np.ndarray,
    fit_rows: np.ndarray,
    stop: np.ndarray,
    cal: np.ndarray,
    test: np.ndarray,
    params: dict[str, Any],
    cfg: ModelsConfig,
) -> list[dict[str, Any]]:
    """LightGBM with each imbalance strategy, on the same (on large tables, sampled)
    training rows, calibrated alike and tested out of time. Reported, never used to
    choose: the configured strategy is the one kept."""
    rows = _subsample(fit_rows, y, cfg.tuning.sample_rows, cfg.seed)
    out = []
    for strategy in STRATEGIES:
        began = time.perf_counter()
        _, calibrated, learned = _fit_calibrated(
            "lightgbm", strategy, X, y, rows, stop, cal, params, cfg
        )
        seconds = time.perf_counter() - began
        figures = metrics.evaluate(y[test], calibrated.predict_proba(X[test])[:, 1])
        out.append(
            {
                "strategy": strategy,
                "used": strategy == cfg.imbalance,
                "training_rows": len(learned),
                "positive_share": round(float(np.mean(learned)), 4),
                "auc": figures["auc"],
                "pr_auc": figures["pr_auc"],
                "brier": figures["brier"],
                "ece": figures["ece"],
                "seconds": round(seconds, 2),
            }
        )
    return out


def _train_crossfit(
    ds: Dataset, name: str, cfg: ModelsConfig, progress: Progress | None
) -> Trained:
    """A table without dates: choices by cross-validation, the estimate by nested
    cross-fitting, the model kept fitted on all rows (see ``crossfit``)."""
    X, y = ds.X, ds.y
    done = crossfit(X, y, cfg, name=name, progress=progress)
    final = done.final
    categories = {c: list(X[c].cat.categories) for c in ds.categorical}
    model = PropensityModel(name, final.algorithm, ds.features, categories, [final.model])
    figures = metrics.evaluate(y, done.oof)
    aucs = np.array([f["auc"] for f in done.folds])
    briers = np.array([f["brier"] for f in done.folds])
    exported, onnx_info = _serving_graph(model, X, cfg.seed)
    base = final.model.base
    summary = {
        "name": name,
        "algorithm": final.algorithm,
        "chosen_because": f"higher out-of-fold AUC ({final.oof_auc[final.algorithm]:.4f}) "
        f"in {FOLDS}-fold cross-validation",
        "split": {
            "kind": "crossfit",
            "train": [f"all {len(y):,} rows"],
            "validation": f"{FOLDS}-fold cross-validation inside each training part",
            "test": f"out of fold: nested {FOLDS}-fold cross-validation (no time column)",
        },
        "rows": {"train": len(y), "early_stopping": 0, "calibration": 0, "test": len(y)},
        "features": ds.features,
        "ranges": _ranges(X, ds.categorical),
        "notes": ds.notes,
        "calibration": final.calibration,
        "calibration_brier": final.briers,
        "candidates": {
            final.algorithm: {
                "validation_auc": final.oof_auc[final.algorithm],
                "test": figures,
                "seconds": round(done.seconds, 2),
                "iterations": final.trees,
            }
        },
        "inner_auc": final.oof_auc,
        "estimate": {
            "folds": done.folds,
            "auc_mean": float(aucs.mean()),
            "auc_sd": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
            "brier_mean": float(briers.mean()),
            "brier_sd": float(briers.std(ddof=1)) if len(briers) > 1 else 0.0,
            "seconds": round(done.seconds, 2),
        },
        "test": figures,
        "gains": metrics.gains(y, done.oof).to_dict(orient="records"),
        "reliability": metrics.calibration_bins(y, done.oof).to_dict(orient="records"),
        "importance": _importance(base, X, cfg.seed) if hasattr(base, "booster_") else [],
        "curves": metrics.curves(y, done.oof),
        "test_sample": _sample(y, done.oof, cfg.seed),
        "params": final.params,
        "tuning": final.tuning,
        "imbalance": [],
        "onnx": onnx_info,
    }
    if progress:
        progress(f"{name}: done", 1, 1)
    graph = None if exported.model is None else exported.model.SerializeToString()
    return Trained(model, summary, graph)


def train(
    ds: Dataset, name: str, cfg: ModelsConfig, *, progress: Progress | None = None
) -> Trained:
    if ds.when is None and cfg.crossfit_tables and len(ds.y) <= cfg.crossfit_max_rows:
        return _train_crossfit(ds, name, cfg, progress)
    if ds.when is not None:
        split = time_split(ds.when)
        when = ds.when.astype(str)
        train_rows = np.isin(when, split.train)
        valid = np.where(when == split.validation)[0]
        test = when == split.test
        where = f"the {split.validation} snapshot"
        split_info: dict[str, Any] = {
            "train": split.train,
            "validation": split.validation,
            "test": split.test,
        }
    else:
        train_rows, valid, test = _random_split(ds.y, cfg.seed)
        where = "a random 20 % of the rows"
        split_info = {
            "train": ["random 60 %"],
            "validation": "random 20 %",
            "test": "random 20 % (no time column: not out of time)",
        }
    stop, cal = train_test_split(valid, test_size=0.5, random_state=cfg.seed, stratify=ds.y[valid])
    X, y = ds.X, ds.y
    for part, rows in (("training", train_rows), ("test", test)):
        if len(np.unique(y[rows])) < 2:
            raise StageError(
                f"models: the {part} snapshot(s) of {name} have one class only; "
                "nothing to learn or to test"
            )
    candidates: dict[str, dict[str, Any]] = {}
    params = dict(cfg.lightgbm)
    tuning = None
    imbalance: list[dict[str, Any]] = []
    steps = len(cfg.algorithms) + 1
    fit_rows = np.flatnonzero(train_rows)
    for i, algorithm in enumerate(cfg.algorithms, start=1):
        if progress:
            progress(f"{name}: {algorithm}", i - 1, steps)
        if algorithm == "lightgbm" and cfg.tuning.trials > 0:
            if progress:
                progress(f"{name}: tuning lightgbm", i - 1, steps)
            tuning = _tune(X, y, fit_rows, stop, cfg)
            params = tuning["best_params"]
        strategy = cfg.imbalance if algorithm == "lightgbm" else "class_weight"
        began = time.perf_counter()
        base, calibrated, _ = _fit_calibrated(
            algorithm, strategy, X, y, fit_rows, stop, cal, params, cfg
        )
        fitted_s = time.perf_counter() - began
        candidates[algorithm] = {
            "base": base,
            "members": [calibrated],
            "validation_auc": float(
                roc_auc_score(y[cal], calibrated.predict_proba(X.iloc[cal])[:, 1])
            ),
            "seconds": round(fitted_s, 2),
            "iterations": int(getattr(base, "best_iteration_", 0) or 0) or None,
        }
        if algorithm == "lightgbm" and cfg.compare_imbalance:
            if progress:
                progress(f"{name}: imbalance strategies", i - 1, steps)
            imbalance = _compare_imbalance(X, y, fit_rows, stop, cal, test, params, cfg)
    if len(candidates) > 1:
        members = [c["members"][0] for c in candidates.values()]
        p_avg = np.mean([m.predict_proba(X.iloc[cal])[:, 1] for m in members], axis=0)
        auc = float(roc_auc_score(y[cal], p_avg))
        if all(auc > c["validation_auc"] for c in candidates.values()):
            candidates["average"] = {"members": members, "validation_auc": auc}
    if progress:
        progress(f"{name}: evaluating", steps - 1, steps)
    categories = {c: list(X[c].cat.categories) for c in ds.categorical}
    results = {}
    for algorithm, c in candidates.items():
        model = PropensityModel(name, algorithm, ds.features, categories, c["members"])
        p = model.predict(X[test])
        results[algorithm] = {
            "validation_auc": c["validation_auc"],
            "test": metrics.evaluate(y[test], p),
            "seconds": c.get("seconds"),
            "iterations": c.get("iterations"),
        }
    best = max(candidates, key=lambda a: (candidates[a]["validation_auc"], a))
    model = PropensityModel(name, best, ds.features, categories, candidates[best]["members"])
    p_test = model.predict(X[test])
    lgbm = candidates.get("lightgbm", {}).get("base")
    exported, onnx_info = _serving_graph(model, X[test], cfg.seed)
    summary = {
        "name": name,
        "algorithm": best,
        "chosen_because": f"highest validation AUC ({candidates[best]['validation_auc']:.4f}) "
        f"on {where}",
        "split": split_info,
        "rows": {
            "train": int(train_rows.sum()),
            "early_stopping": len(stop),
            "calibration": len(cal),
            "test": int(test.sum()),
        },
        "features": ds.features,
        "ranges": _ranges(X, ds.categorical),
        "notes": ds.notes,
        "calibration": cfg.calibration,
        "candidates": results,
        "test": results[best]["test"],
        "gains": metrics.gains(y[test], p_test).to_dict(orient="records"),
        "reliability": metrics.calibration_bins(y[test], p_test).to_dict(orient="records"),
        "importance": [] if lgbm is None else _importance(lgbm, X[test], cfg.seed),
        "curves": metrics.curves(y[test], p_test),
        "test_sample": _sample(y[test], p_test, cfg.seed),
        "params": params if "lightgbm" in candidates else {},
        "tuning": tuning,
        "imbalance": imbalance,
        "onnx": onnx_info,
    }
    if progress:
        progress(f"{name}: done", steps, steps)
    graph = None if exported.model is None else exported.model.SerializeToString()
    return Trained(model, summary, graph)
