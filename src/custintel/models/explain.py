"""Why a customer got their score: each feature's push on it, in the catalog's words.

LightGBM gives exact per-row SHAP values (``pred_contrib``); for the logistic regression
a feature's push is its coefficient times its scaled value, summed over the columns it
became (missing indicator, one-hot levels). Pushes are in log-odds before calibration,
which keeps their order; the reasons are the three features pushing hardest the way
the score went (up for a score above the average, down for one below).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def _base(calibrated: Any) -> Any:
    """The fitted learner inside a calibrated, frozen wrapper."""
    inner = calibrated.calibrated_classifiers_[0].estimator
    return getattr(inner, "estimator", inner)


def contributions(members: list[Any], X: pd.DataFrame) -> np.ndarray | None:
    """Rows x features pushes of the first member that can say (LightGBM preferred)."""
    bases = [_base(m) for m in members]
    for base in sorted(bases, key=lambda b: hasattr(b, "booster_"), reverse=True):
        if hasattr(base, "booster_"):
            return np.asarray(base.booster_.predict(X, pred_contrib=True))[:, :-1]
        if hasattr(base, "named_steps"):
            prep, model = base.named_steps["prep"], base.named_steps["model"]
            Z = prep.transform(X)
            Z = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z)
            pushes = Z * model.coef_[0]
            names = prep.get_feature_names_out()
            out = np.zeros((len(X), X.shape[1]))
            position = {c: i for i, c in enumerate(X.columns)}
            for j, name in enumerate(names):
                column = _source_column(name, position)
                if column is not None:
                    out[:, position[column]] += pushes[:, j]
            return out
    return None


def _source_column(name: str, position: Mapping[str, int]) -> str | None:
    """The input column a transformed column came from (``numbers__x``,
    ``numbers__missingindicator_x``, ``categories__x_level``)."""
    rest = name.split("__", 1)[-1].removeprefix("missingindicator_")
    if rest in position:
        return rest
    matches = [c for c in position if rest.startswith(c + "_")]
    return max(matches, key=len) if matches else None


def _value(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return "none"
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return str(v)


def _label(description: str) -> str:
    """The catalog description up to its first aside (", e.g.", a colon, brackets)."""
    for cut in (" (", ":", ", e.g."):
        description = description.split(cut)[0]
    return description.rstrip(".")


def reasons(
    pushes: np.ndarray,
    X: pd.DataFrame,
    descriptions: Mapping[str, str],
    top: int = 3,
) -> list[str]:
    """Per row, a JSON list of the ``top`` features pushing the score the way it went (up
    for a score above the average, down for one below), as "description: value".

    Vectorised by column: formatting a million rows one at a time took most of a batch."""
    n, columns = len(X), list(X.columns)
    direction = np.where(pushes.sum(axis=1) >= 0, 1.0, -1.0)[:, None]
    signed = pushes * direction
    k = min(top, len(columns))
    best = (
        np.argpartition(-signed, k - 1, axis=1)[:, :k]
        if k < len(columns)
        else (np.tile(np.arange(len(columns)), (n, 1)))
    )
    rows = np.arange(n)[:, None]
    best = np.take_along_axis(best, np.argsort(-signed[rows, best], axis=1), axis=1)
    labels = np.array(
        [json.dumps(_label(descriptions.get(c, c)))[1:-1] for c in columns], dtype=object
    )
    text = np.full(n, "[", dtype=object)
    for r in range(k):
        j = best[:, r]
        keep = signed[np.arange(n), j] > 0
        values = np.empty(n, dtype=object)
        for col in np.unique(j[keep]):
            at = keep & (j == col)
            raw = X.iloc[np.where(at)[0], col]
            if pd.api.types.is_numeric_dtype(raw):
                arr = raw.to_numpy("float64")
                arr0 = np.nan_to_num(arr)
                shown = np.where(
                    np.abs(arr0) >= 1000, np.char.mod("%.0f", arr0), np.char.mod("%.3g", arr0)
                ).astype(object)
                shown[np.isnan(arr)] = "none"
            else:
                shown = np.array([json.dumps(_value(v))[1:-1] for v in raw], dtype=object)
            values[at] = shown
        item = np.where(keep, '"' + labels[j] + ": " + values.astype(str) + '"', "")
        sep = ", " if r else ""
        text = np.where(keep, text + sep + item, text)
    return list(text + "]")


BINS = 32


class Dependence:
    """Each feature's average exact push at its value, learned from a sample.

    Exact TreeSHAP costs about a millisecond per customer for a few hundred trees, a
    quarter of an hour for a million on two cores. The pushes of most features depend
    mostly on the feature's own value, so each feature's mean push is tabulated by value
    bin (quantiles of the sample; categories and missing values apart) and looked up for
    every customer: the additive part of SHAP, without interactions. ``agreement`` says
    how often the top reason matches the exact one on rows held out from the tables.
    """

    def __init__(self, X: pd.DataFrame, pushes: np.ndarray) -> None:
        self.columns = list(X.columns)
        self.tables: list[tuple[str, np.ndarray, np.ndarray, float]] = []
        for j, c in enumerate(self.columns):
            push = pushes[:, j]
            col = X[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                codes = col.cat.codes.to_numpy()  # -1: missing
                n = len(col.cat.categories)
                means = np.array(
                    [push[codes == k].mean() if (codes == k).any() else 0.0 for k in range(n)]
                )
                missing = float(push[codes < 0].mean()) if (codes < 0).any() else 0.0
                self.tables.append(("category", np.empty(0), means, missing))
                continue
            x = col.to_numpy("float64")
            ok = ~np.isnan(x)
            edges = (
                np.unique(np.quantile(x[ok], np.linspace(0, 1, BINS + 1)[1:-1]))
                if ok.any()
                else np.empty(0)
            )
            which = np.searchsorted(edges, x[ok], side="right")
            sums = np.bincount(which, weights=push[ok], minlength=len(edges) + 1)
            counts = np.bincount(which, minlength=len(edges) + 1)
            means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
            missing = float(push[~ok].mean()) if (~ok).any() else 0.0
            self.tables.append(("number", edges, means, missing))
        self.agreement: float | None = None

    def pushes(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(X), len(self.columns)))
        for j, (c, (kind, edges, means, missing)) in enumerate(
            zip(self.columns, self.tables, strict=True)
        ):
            col = X[c]
            if kind == "category":
                codes = col.cat.codes.to_numpy()
                out[:, j] = np.where(codes >= 0, means[np.clip(codes, 0, None)], missing)
            else:
                x = col.to_numpy("float64")
                which = np.searchsorted(edges, np.nan_to_num(x), side="right")
                out[:, j] = np.where(np.isnan(x), missing, means[which])
        return out


def dependence(
    members: list[Any], X: pd.DataFrame, seed: int = 0, rows: int = 10_000
) -> Dependence | None:
    """Tables from exact pushes on a sample of ``X``; their top-reason agreement with the
    exact pushes measured on 2,000 other rows."""
    pick = np.random.default_rng(seed).permutation(len(X))
    learn, check = pick[:rows], pick[rows : rows + 2000]
    exact = contributions(members, X.iloc[learn])
    if exact is None:
        return None
    table = Dependence(X.iloc[learn], exact)
    if len(check):
        truth = contributions(members, X.iloc[check])
        guess = table.pushes(X.iloc[check])
        sign = np.where(truth.sum(axis=1) >= 0, 1.0, -1.0)[:, None]
        table.agreement = float(
            (np.argmax(truth * sign, axis=1) == np.argmax(guess * sign, axis=1)).mean()
        )
    return table
