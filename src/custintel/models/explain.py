"""Why a customer got their score: each feature's push on it, in the catalog's words.

LightGBM gives exact per-row SHAP values (``pred_contrib``); for the logistic regression
a feature's push is its coefficient times its scaled value, summed over the columns it
became (missing indicator, one-hot levels). Pushes are in log-odds before calibration,
which keeps their order; the reasons are the three features pushing hardest the way
the score went (up for a score above the average, down for one below).
"""

from __future__ import annotations

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
        return f"{v:.3g}"
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
) -> list[list[str]]:
    """Per row, the ``top`` features pushing the score the way it went (up for a score
    above the average, down for one below), as "description: value"."""
    columns = list(X.columns)
    direction = np.where(pushes.sum(axis=1) >= 0, 1.0, -1.0)[:, None]
    signed = pushes * direction
    order = np.argsort(-signed, axis=1)[:, :top]
    values = X.to_numpy(dtype=object)
    out = []
    for i, row in enumerate(order):
        words = []
        for j in row:
            if signed[i, j] <= 0:
                break
            name = columns[j]
            words.append(f"{_label(descriptions.get(name, name))}: {_value(values[i, j])}")
        out.append(words)
    return out
