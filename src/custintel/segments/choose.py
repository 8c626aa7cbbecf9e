"""Choosing the number of segments: every candidate k fitted and scored the usual ways.

For each k: k-means inertia (for the elbow), silhouette on a sample (it is quadratic in
rows), Calinski-Harabasz and Davies-Bouldin on every row and the smallest segment's share; with
``mixtures`` also a Gaussian mixture's BIC. The choice: among the k whose smallest
segment is at least ``min_share`` of the customers, the k that most of silhouette
(highest), Calinski-Harabasz (highest) and Davies-Bouldin (lowest) pick, the silhouette's
pick when all three disagree; for mixtures the lowest BIC. No single index is reliable on
its own (silhouette favours few round clusters, Calinski-Harabasz many), so the choice is
the one they agree on; the table keeps every score so the report shows the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.mixture import GaussianMixture

MINIBATCH_FROM = 100_000
"""Rows from which k-means runs in mini-batches."""
SILHOUETTE_ROWS = 10_000
"""Silhouette compares every pair of rows, so it is scored on a sample of this size;
Calinski-Harabasz and Davies-Bouldin are linear and use every row."""


@dataclass(frozen=True)
class Choice:
    k: int
    reason: str
    scores: pd.DataFrame


def kmeans(k: int, rows: int, seed: int) -> KMeans | MiniBatchKMeans:
    """Full k-means for moderate data, mini-batch k-means for large data."""
    if rows >= MINIBATCH_FROM:
        return MiniBatchKMeans(k, n_init=3, batch_size=8192, random_state=seed)
    return KMeans(k, n_init=10, random_state=seed)


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=min(n, size), replace=False)


def elbow(ks: list[int], inertia: list[float]) -> int:
    """The k farthest below the straight line from the first to the last inertia."""
    x, y = np.asarray(ks, float), np.asarray(inertia, float)
    if len(x) < 3:
        return int(x[0])
    line = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
    return int(x[np.argmax(line - y)])


def evaluate(
    Z: np.ndarray,
    ks: list[int],
    *,
    seed: int = 0,
    sample: int = 10_000,
    mixtures: bool = False,
) -> pd.DataFrame:
    """One row of scores per candidate k on the prepared matrix ``Z``."""
    n = len(Z)
    if n < 2 * max(ks):
        raise ValueError(
            f"{n} customers are too few for k up to {max(ks)} (need at least {2 * max(ks)})"
        )
    idx = _sample(n, min(sample, SILHOUETTE_ROWS), seed)
    rows = []
    for k in ks:
        model = kmeans(k, n, seed).fit(Z)
        labels = model.predict(Z)
        sizes = np.bincount(labels, minlength=k)
        row = {
            "k": k,
            "inertia": float(model.inertia_),
            "silhouette": float(silhouette_score(Z[idx], labels[idx])),
            "calinski_harabasz": float(calinski_harabasz_score(Z, labels)),
            "davies_bouldin": float(davies_bouldin_score(Z, labels)),
            "smallest_share": float(sizes.min() / n),
        }
        if mixtures:
            gm = GaussianMixture(k, covariance_type="full", random_state=seed).fit(Z[idx])
            row["bic"] = float(gm.bic(Z[idx]))
        rows.append(row)
    return pd.DataFrame(rows)


def choose(scores: pd.DataFrame, *, min_share: float = 0.03, by: str = "vote") -> Choice:
    """The k the quality indices agree on (``by="vote"``) or with the lowest mixture BIC
    (``by="bic"``), among the k with no segment under ``min_share``."""
    ok = scores[scores.smallest_share >= min_share]
    if ok.empty:
        best = scores.sort_values("smallest_share", ascending=False).iloc[0]
        return Choice(
            int(best.k),
            f"no k keeps every segment at {min_share:.0%} of customers or more; "
            f"k={int(best.k)} has the largest smallest segment ({best.smallest_share:.1%})",
            scores,
        )
    knee = elbow(list(scores.k), list(scores.inertia))
    floor = f"among k with every segment at least {min_share:.0%} of customers"
    if by == "bic":
        best = ok.sort_values(["bic", "k"]).iloc[0]
        return Choice(
            int(best.k),
            f"lowest mixture BIC ({best.bic:,.0f}) {floor}; the inertia elbow is at k={knee}",
            scores,
        )
    picks = {
        "silhouette": int(ok.sort_values(["silhouette", "k"], ascending=[False, True]).k.iloc[0]),
        "Calinski-Harabasz": int(
            ok.sort_values(["calinski_harabasz", "k"], ascending=[False, True]).k.iloc[0]
        ),
        "Davies-Bouldin": int(ok.sort_values(["davies_bouldin", "k"]).k.iloc[0]),
    }
    votes = pd.Series(list(picks.values())).value_counts()
    agreed = [k for k, v in votes.items() if v >= 2]
    k = int(agreed[0]) if agreed else picks["silhouette"]
    said = ", ".join(f"{name} k={v}" for name, v in picks.items())
    how = "most quality indices agree" if agreed else "the indices disagree, silhouette decides"
    row = ok.set_index("k").loc[k]
    return Choice(
        k,
        f"{how} ({said}) {floor}; silhouette {row.silhouette:.3f}; "
        f"the inertia elbow is at k={knee}",
        scores,
    )
