"""Is the challenger really better? A paired bootstrap of the AUC difference.

Both models score the same customers; resampling customers (with replacement) and
recomputing both AUCs on each resample keeps the pairing, so the spread of the
difference reflects the sample, not two independent noises. The challenger is better
when the 95 % interval of (challenger - champion) lies above zero.
"""

from __future__ import annotations

import numpy as np

from custintel.stats import auc, bootstrap


def paired_bootstrap(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    rounds: int = 200,
    seed: int = 0,
) -> dict[str, float | bool | int]:
    y = np.asarray(y).astype(int)
    interval, d = bootstrap(
        lambda yy, a, b: auc(yy, b) - auc(yy, a),
        y,
        np.asarray(champion),
        np.asarray(challenger),
        rounds=rounds,
        seed=seed,
        usable=lambda yy, a, b: yy.min() != yy.max(),
    )
    a, b = auc(y, champion), auc(y, challenger)
    return {
        "rows": len(y),
        "rounds": len(d),
        "champion_auc": a,
        "challenger_auc": b,
        "difference": b - a,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "share_better": float((d > 0).mean()) if len(d) else float("nan"),
        "better": bool(interval.low > 0),
    }
