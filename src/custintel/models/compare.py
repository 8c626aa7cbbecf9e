"""Is the challenger really better? A paired bootstrap of the AUC difference.

Both models score the same customers; resampling customers (with replacement) and
recomputing both AUCs on each resample keeps the pairing, so the spread of the
difference reflects the sample, not two independent noises. The challenger is better
when the 95 % interval of (challenger - champion) lies above zero.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks), vectorised for speed."""
    ranks = rankdata(p)
    positives = y.sum()
    negatives = len(y) - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def paired_bootstrap(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    rounds: int = 200,
    seed: int = 0,
) -> dict[str, float | bool | int]:
    y = np.asarray(y).astype(int)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue
        diffs.append(_auc(y[rows], challenger[rows]) - _auc(y[rows], champion[rows]))
    d = np.array(diffs)
    low, high = np.quantile(d, [0.025, 0.975]) if len(d) else (np.nan, np.nan)
    a, b = _auc(y, champion), _auc(y, challenger)
    return {
        "rows": len(y),
        "rounds": len(d),
        "champion_auc": a,
        "challenger_auc": b,
        "difference": b - a,
        "ci_low": float(low),
        "ci_high": float(high),
        "share_better": float((d > 0).mean()) if len(d) else float("nan"),
        "better": bool(low > 0),
    }
