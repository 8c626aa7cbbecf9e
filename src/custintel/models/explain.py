"""Why a customer got their score: each feature's push on it, in the catalog's words.

LightGBM gives exact per-row SHAP values (``pred_contrib``); for the logistic regression
a feature's push is its coefficient times its scaled value, summed over the columns it
became (missing indicator, one-hot levels). Pushes are in log-odds before calibration,
which keeps their order; the reasons are the three features pushing hardest the way
the score went (up for a score above the average, down for one below).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


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


def _numbers_as_text(v: np.ndarray) -> pa.Array:
    """Numbers as people read them: whole above 1,000, else three significant digits
    ("324", "0.25", "12.3"); missing: "none". Rounded in numpy and printed by Arrow,
    because formatting a million values in Python took seconds."""
    finite = np.isfinite(v)
    a = np.abs(np.where(finite, v, 0.0))
    big = a >= 1000
    digits = np.where(a > 0, 2 - np.floor(np.log10(np.where(a > 0, a, 1.0))), 0.0)
    scale = 10.0 ** np.clip(digits, -300, 300)
    small = np.round(np.where(finite, v, 0.0) * scale) / scale
    whole = pa.array(np.round(np.where(big, v, 0.0)).astype(np.int64)).cast(pa.string())
    text = pc.if_else(pa.array(big), whole, pa.array(small).cast(pa.string()))
    return pc.if_else(pa.array(finite), text, pa.scalar("none"))


def reasons(
    pushes: np.ndarray,
    X: pd.DataFrame,
    descriptions: Mapping[str, str],
    top: int = 3,
) -> list[str]:
    """Per row, a JSON list of the ``top`` features pushing the score the way it went (up
    for a score above the average, down for one below), as "description: value".

    Vectorised over rows with Arrow's string functions: formatting a million rows one at
    a time took most of a batch."""
    n, columns = len(X), list(X.columns)
    if n == 0:
        return []
    direction = np.where(pushes.sum(axis=1) >= 0, 1.0, -1.0)[:, None]
    # kept column-major: the pushes are built column by column, and numpy's broadcasting
    # and nan_to_num would otherwise spend seconds reordering a million rows
    signed = np.multiply(pushes, direction, order="F")
    signed[np.isnan(signed)] = -np.inf
    k = min(top, len(columns))
    rows = np.arange(n)
    # The k largest, in order, by a row maximum and a pass over the columns to find where
    # it is: argmax along rows of a column-major matrix copies it first, and a partition
    # plus a sort of every row took seconds at a million rows.
    best = np.empty((n, k), dtype=np.int64)
    push = np.empty((n, k))
    for r in range(k):
        push[:, r] = signed.max(axis=1)
        which = best[:, r]
        for c in range(len(columns) - 1, -1, -1):  # the first column wins a tie
            which[signed[:, c] == push[:, r]] = c
        signed[rows, which] = -np.inf
    labels = pa.array([json.dumps(_label(descriptions.get(c, c)))[1:-1] for c in columns])
    # every column as numbers (categories as codes), and one lookup of category texts
    is_category = np.array([isinstance(X[c].dtype, pd.CategoricalDtype) for c in columns])
    values = np.empty((n, len(columns)), order="F")  # filled column by column
    numbers = np.flatnonzero(~is_category)
    for i in numbers:
        col = X[columns[i]]
        values[:, i] = (
            col.to_numpy() if col.dtype == np.float64 else col.to_numpy("float64", na_value=np.nan)
        )
    offset = np.zeros(len(columns), np.int64)
    texts = ["none"]
    for i in np.flatnonzero(is_category):
        col = X.iloc[:, i]
        offset[i] = len(texts)
        texts += [json.dumps(_value(v))[1:-1] for v in col.cat.categories]
        values[:, i] = col.cat.codes.to_numpy()
    texts_array = pa.array(texts)
    items = []
    for r in range(k):
        j = best[:, r]
        v = values[rows, j]
        code = np.where(is_category[j] & (v >= 0), offset[j] + np.maximum(v, 0), 0)
        shown = pc.if_else(
            pa.array(is_category[j]),
            texts_array.take(pa.array(code.astype(np.int64))),
            _numbers_as_text(v),
        )
        item = pc.binary_join_element_wise('"', labels.take(pa.array(j)), ": ", shown, '"', "")
        keep = pa.array(push[:, r] > 0)
        items.append(pc.if_else(keep, item, pa.nulls(n, pa.string())))
    body = pc.binary_join_element_wise(*items, ", ", null_handling="skip")
    return pc.binary_join_element_wise("[", body, "]", "").to_pylist()


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
        self.sample_rows = len(X)
        self.check_rows = 0

    def pushes(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(X), len(self.columns)), order="F")  # filled column by column
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


PROBE_ROWS = 300


def dependence(
    members: list[Any],
    X: pd.DataFrame,
    seed: int = 0,
    rows: int = 4_000,
    seconds: float = 4.0,
) -> Dependence | None:
    """Tables from exact pushes on a sample of ``X``, and their top-reason agreement with
    the exact pushes on other rows (up to 2,000).

    Exact SHAP costs grow with the trees' depth: a tuned model with 126 leaves per tree
    took 3.4 ms a customer. So the sample is sized to spend about ``seconds`` (two
    thirds learning, one third checking), between 1,000 and ``rows`` customers."""
    pick = np.random.default_rng(seed).permutation(len(X))
    began = time.perf_counter()
    probe = contributions(members, X.iloc[pick[:PROBE_ROWS]])
    if probe is None:
        return None
    each = (time.perf_counter() - began) / max(min(PROBE_ROWS, len(X)), 1)
    learn_n = int(np.clip(seconds * 2 / 3 / max(each, 1e-9), 1000, rows))
    check_n = int(np.clip(seconds / 3 / max(each, 1e-9), 500, 2000))
    learn, check = pick[:learn_n], pick[learn_n : learn_n + check_n]
    rest = contributions(members, X.iloc[learn[PROBE_ROWS:]])
    exact = probe if rest is None or len(learn) <= PROBE_ROWS else np.vstack([probe, rest])
    table = Dependence(X.iloc[learn], exact[: len(learn)])
    table.sample_rows = len(learn)
    if len(check):
        truth = contributions(members, X.iloc[check])
        guess = table.pushes(X.iloc[check])
        sign = np.where(truth.sum(axis=1) >= 0, 1.0, -1.0)[:, None]
        table.agreement = float(
            (np.argmax(truth * sign, axis=1) == np.argmax(guess * sign, axis=1)).mean()
        )
        table.check_rows = len(check)
    return table
