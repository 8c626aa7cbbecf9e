"""Are the segments real? Distinct on each feature, stable under resampling and over time.

- Distinctness per feature: one-way ANOVA (F, p, eta squared) and Kruskal-Wallis (H, p,
  epsilon squared, which needs no normality); with many customers every p is tiny, so the
  effect sizes are what to read.
- Bootstrap stability: refit on resamples, predict the reference rows, compare with the
  reference segments by adjusted Rand index, and per segment by the best Jaccard overlap
  (a segment that keeps falling apart under resampling is not one to act on).
- Over time: the migration matrix of customers between two as-of dates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import adjusted_rand_score

TEST_ROWS = 100_000


def distinctness(
    frame: pd.DataFrame, labels: np.ndarray, features: Sequence[str], *, seed: int = 0
) -> pd.DataFrame:
    """One row per feature: ANOVA and Kruskal-Wallis statistics and effect sizes."""
    n = len(frame)
    idx = np.arange(n)
    if n > TEST_ROWS:
        idx = np.random.default_rng(seed).choice(n, TEST_ROWS, replace=False)
    lab = np.asarray(labels)[idx]
    rows = []
    for name in features:
        x = pd.to_numeric(frame[name].iloc[idx], errors="coerce").to_numpy("float64")
        ok = ~np.isnan(x)
        groups = [x[ok & (lab == c)] for c in np.unique(lab[ok])]
        groups = [g for g in groups if len(g) > 1]
        m, g = int(ok.sum()), len(groups)
        if g < 2 or np.ptp(x[ok]) == 0:
            continue
        f_stat, f_p = stats.f_oneway(*groups)
        grand = x[ok].mean()
        between = sum(len(v) * (v.mean() - grand) ** 2 for v in groups)
        total = ((x[ok] - grand) ** 2).sum()
        h_stat, h_p = stats.kruskal(*groups)
        rows.append(
            {
                "feature": name,
                "anova_f": float(f_stat),
                "anova_p": float(f_p),
                "eta_squared": float(between / total) if total else 0.0,
                "kruskal_h": float(h_stat),
                "kruskal_p": float(h_p),
                "epsilon_squared": float(h_stat / (m - 1)) if m > 1 else 0.0,
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values("epsilon_squared", ascending=False, ignore_index=True) if rows else out


def bootstrap_stability(
    Z: np.ndarray,
    reference: np.ndarray,
    refit: Callable[[np.ndarray, int], Callable[[np.ndarray], np.ndarray]],
    *,
    rounds: int = 20,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """ARI and per-segment Jaccard of refits on bootstrap resamples of ``Z``.

    ``refit(rows, seed)`` fits the same method on the rows and returns its predict
    function; ``reference`` holds the segments of ``Z`` from the fitted model.
    """
    rng = np.random.default_rng(seed)
    n = len(Z)
    segments = np.unique(reference)
    aris: list[float] = []
    jaccard = {int(s): [] for s in segments}  # type: dict[int, list[float]]
    for b in range(rounds):
        rows = rng.integers(0, n, n)
        predicted = refit(Z[rows], seed + b + 1)(Z)
        aris.append(float(adjusted_rand_score(reference, predicted)))
        table = pd.crosstab(reference, predicted)
        ref_size = table.sum(axis=1).to_numpy()[:, None]
        new_size = table.sum(axis=0).to_numpy()[None, :]
        inter = table.to_numpy()
        best = (inter / (ref_size + new_size - inter)).max(axis=1)
        for s, j in zip(table.index, best, strict=True):
            jaccard[int(s)].append(float(j))
        if progress:
            progress(b + 1, rounds)
    return {
        "rounds": rounds,
        "ari_mean": float(np.mean(aris)) if aris else None,
        "ari_min": float(np.min(aris)) if aris else None,
        "ari": aris,
        "jaccard": {s: float(np.mean(v)) for s, v in jaccard.items() if v},
    }


def migration(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Customers by segment at the first date (rows) and the second (columns).

    Both frames have ``customer_id`` and ``segment_name``; customers only at one date are
    counted as ``(not yet a customer)`` or ``(gone)``.
    """
    both = before[["customer_id", "segment_name"]].merge(
        after[["customer_id", "segment_name"]],
        on="customer_id",
        how="outer",
        suffixes=("_from", "_to"),
    )
    both["segment_name_from"] = both.segment_name_from.fillna("(not yet a customer)")
    both["segment_name_to"] = both.segment_name_to.fillna("(gone)")
    return pd.crosstab(both.segment_name_from, both.segment_name_to)
