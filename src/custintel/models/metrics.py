"""How good a propensity score is, in the terms marketing uses to act on it.

- ranking: ROC AUC, precision-recall AUC (average precision), Kolmogorov-Smirnov;
- calibration: Brier score and expected calibration error (ECE: the customer-weighted
  mean gap between predicted and observed rates over ten equal-width probability bins);
- targeting: gains and lift by decile (decile 1 holds the highest scores), top-decile
  lift, and a threshold table of volume, expected and observed positives, cost, value and
  return on investment for contacting everyone above a cut-off.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

# the ranking measures live in the shared statistics; named here for models' callers
from custintel.stats.ranking import (
    calibration_bins,
    expected_calibration_error,
    gains,
    ks_statistic,
)

__all__ = [
    "calibration_bins",
    "curves",
    "evaluate",
    "expected_calibration_error",
    "gains",
    "ks_statistic",
    "threshold_table",
]


def threshold_table(
    y: np.ndarray | None,
    p: np.ndarray,
    *,
    cost: float,
    value: float,
    shares: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
) -> pd.DataFrame:
    """Contact the top ``share`` of customers by score: volume, the score cut-off, expected
    positives (the sum of calibrated scores), observed positives when ``y`` is known,
    cost, expected value and return on investment."""
    order = np.argsort(-p, kind="stable")
    ps = np.asarray(p)[order]
    ys = None if y is None else np.asarray(y)[order]
    rows = []
    for share in shares:
        volume = max(1, round(share * len(ps)))
        expected = float(ps[:volume].sum())
        spend = volume * cost
        row = {
            "share": share,
            "volume": volume,
            "cutoff": float(ps[volume - 1]),
            "expected_positives": expected,
            "cost": spend,
            "expected_value": expected * value,
            "roi": (expected * value - spend) / spend if spend else np.nan,
        }
        if ys is not None:
            row["observed_positives"] = int(ys[:volume].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def curves(y: np.ndarray, p: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    """ROC and precision-recall curves thinned to about ``points`` points each."""
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)

    def thin(*arrays: np.ndarray) -> list[list[float]]:
        keep = np.unique(np.linspace(0, len(arrays[0]) - 1, points).astype(int))
        return [[round(float(v), 5) for v in a[keep]] for a in arrays]

    fpr_, tpr_ = thin(fpr, tpr)
    recall_, precision_ = thin(recall, precision)
    return {"fpr": fpr_, "tpr": tpr_, "recall": recall_, "precision": precision_}


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The headline figures of one scored sample."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype="float64")
    if len(np.unique(y)) < 2:
        raise ValueError("evaluation needs both classes among the outcomes")
    table = gains(y, p)
    return {
        "rows": len(y),
        "positive_rate": float(y.mean()),
        "auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "ks": ks_statistic(y, p),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "top_decile_lift": float(table.lift.iloc[0]),
    }
