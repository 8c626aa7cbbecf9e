"""Clustering methods behind one interface: fit on a matrix, predict for any rows.

- ``kmeans``: full k-means, mini-batch from 100,000 rows;
- ``gmm``: a Gaussian mixture with full covariances (fitted on up to 200,000 rows);
- ``ward``: Ward's hierarchical clustering on a sample (it needs all pairwise merges, so
  quadratic memory), then every customer goes to the nearest Ward centroid;
- ``hdbscan`` / ``dbscan``: density-based clusters on a sample; their noise points and
  every other customer take the segment of their nearest clustered neighbours.

Segment numbers are ordered by size (1 is the largest) so they do not depend on the
order in which an algorithm happened to find the clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from custintel.core.errors import StageError
from custintel.segments.choose import kmeans

METHODS = ("kmeans", "gmm", "ward", "hdbscan", "dbscan")
CHOOSES_K = frozenset({"kmeans", "gmm", "ward"})
GMM_ROWS = 200_000
WARD_ROWS = 10_000
NEIGHBOURS = 15


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _nearest(Z: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (Z**2).sum(1)[:, None] - 2 * Z @ centres.T + (centres**2).sum(1)[None, :]
    return np.argmin(d, axis=1)


@dataclass
class Clusterer:
    """A fitted clustering: ``predict`` gives raw cluster numbers 0..k-1 by size."""

    method: str
    k: int | None = None
    seed: int = 0
    sample: int = 20_000
    min_share: float = 0.03
    eps: float | None = None
    model: object = None
    order: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    centres: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def _raw_predict(self, Z: np.ndarray) -> np.ndarray:
        if self.method in ("kmeans", "gmm", "hdbscan", "dbscan"):
            return np.asarray(self.model.predict(Z))  # type: ignore[attr-defined]
        return _nearest(Z, self.centres)

    def fit(self, Z: np.ndarray) -> np.ndarray:
        """Fit and return every row's cluster (0 is the largest)."""
        n = len(Z)
        if self.method not in METHODS:
            raise StageError(f"segments: unknown method {self.method!r} (one of {METHODS})")
        if self.method in CHOOSES_K and (self.k is None or n < 10 * self.k):
            raise StageError(
                f"segments: {n:,} customers are too few for k={self.k} "
                f"(need at least {10 * (self.k or 2):,}, ten per segment)"
            )
        if self.method == "kmeans":
            self.model = kmeans(int(self.k), n, self.seed).fit(Z)  # type: ignore[arg-type]
        elif self.method == "gmm":
            idx = _sample(n, GMM_ROWS, self.seed)
            self.model = GaussianMixture(
                int(self.k),  # type: ignore[arg-type]
                covariance_type="full",
                n_init=2,
                random_state=self.seed,
            ).fit(Z[idx])
        elif self.method == "ward":
            idx = _sample(n, min(self.sample, WARD_ROWS), self.seed)
            labels = AgglomerativeClustering(int(self.k), linkage="ward").fit_predict(Z[idx])  # type: ignore[arg-type]
            self.centres = np.vstack([Z[idx][labels == c].mean(0) for c in range(int(self.k))])  # type: ignore[arg-type]
        else:
            self._fit_density(Z)
        raw = self._raw_predict(Z)
        sizes = np.bincount(raw, minlength=int(raw.max()) + 1)
        # Rank by size, ties by the cluster number, so ids do not depend on discovery order.
        self.order = np.argsort(np.lexsort((np.arange(len(sizes)), -sizes)))
        self.k = len(sizes)
        return self.order[raw]

    def _fit_density(self, Z: np.ndarray) -> None:
        idx = _sample(len(Z), self.sample, self.seed)
        S = Z[idx]
        least = max(10, int(self.min_share * len(S)))
        if self.method == "hdbscan":
            labels = HDBSCAN(min_cluster_size=least, min_samples=NEIGHBOURS, copy=True).fit_predict(
                S
            )
        else:
            eps = self.eps or self._default_eps(S)
            self.eps = eps
            labels = DBSCAN(eps=eps, min_samples=NEIGHBOURS).fit_predict(S)
            # DBSCAN has no minimum cluster size: tiny dense pockets count as noise here.
            small = [c for c in set(labels) - {-1} if (labels == c).sum() < least]
            labels = np.where(np.isin(labels, small), -1, labels)
        found = sorted(set(labels) - {-1})
        if len(found) < 2:
            raise StageError(
                f"segments: {self.method} found {len(found)} dense cluster(s) in a sample of "
                f"{len(S):,} customers; try kmeans, or "
                + ("a smaller segments.eps" if self.method == "dbscan" else "a lower min_share")
            )
        keep = labels >= 0
        remap = {c: i for i, c in enumerate(found)}
        y = np.array([remap[c] for c in labels[keep]])
        self.model = KNeighborsClassifier(NEIGHBOURS).fit(S[keep], y)

    @staticmethod
    def _default_eps(S: np.ndarray) -> float:
        """The 90th percentile of the distance to the 15th neighbour: a radius within which nine
        customers in ten have enough neighbours to be core points."""
        nn = NearestNeighbors(n_neighbors=NEIGHBOURS).fit(S)
        dist, _ = nn.kneighbors(S)
        return float(np.quantile(dist[:, -1], 0.9))

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.order[self._raw_predict(Z)]
