"""How well a score ranks outcomes: AUC, Kolmogorov-Smirnov, gains and lift by decile,
calibration by probability bin. Shared by propensity models, uplift models and
monitoring of performance decay."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_curve

BINS = 10


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks), vectorised for speed."""
    ranks = rankdata(p)
    positives = y.sum()
    negatives = len(y) - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """The largest gap between the true and false positive rates over all cut-offs."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """Customers, mean prediction and observed rate per equal-width probability bin."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "y": y, "p": p})
    out = frame.groupby("bin").agg(
        customers=("y", "size"), predicted=("p", "mean"), observed=("y", "mean")
    )
    out["low"], out["high"] = edges[out.index], edges[out.index + 1]
    return out.reset_index()


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> float:
    """The customer-weighted mean gap between predicted and observed rates per bin."""
    table = calibration_bins(y, p, bins)
    gap = (table.predicted - table.observed).abs()
    return float((gap * table.customers).sum() / table.customers.sum())


def gains(y: np.ndarray, p: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """One row per decile of score (1 = highest): customers, positives, rate, lift, and the
    cumulative share of all positives captured (gains) and cumulative lift."""
    order = np.argsort(-p, kind="stable")
    ys, ps = np.asarray(y)[order], np.asarray(p)[order]
    n = len(ys)
    decile = np.minimum((np.arange(n) * groups) // n, groups - 1) + 1
    frame = pd.DataFrame({"decile": decile, "y": ys, "p": ps})
    out = frame.groupby("decile").agg(
        customers=("y", "size"),
        positives=("y", "sum"),
        mean_score=("p", "mean"),
        min_score=("p", "min"),
    )
    base = ys.mean() if n else 0.0
    out["rate"] = out.positives / out.customers
    out["lift"] = out.rate / base if base else np.nan
    out["cum_gains"] = out.positives.cumsum() / ys.sum() if ys.sum() else np.nan
    out["cum_lift"] = (out.positives.cumsum() / out.customers.cumsum()) / base if base else np.nan
    return out.reset_index()
