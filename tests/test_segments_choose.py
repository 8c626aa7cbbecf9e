"""Choosing k: planted, well-separated groups are found; too few rows and tiny segments
are handled with a clear reason."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from custintel.segments.choose import choose, elbow, evaluate, kmeans


def _blobs(sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 10.0 * np.eye(len(sizes), 4)  # far apart: one corner each
    X = np.vstack([rng.normal(c, 1.0, size=(n, 4)) for c, n in zip(centres, sizes, strict=True)])
    y = np.repeat(np.arange(len(sizes)), sizes)
    return X, y


def test_planted_groups_are_found() -> None:
    X, y = _blobs([3000, 2000, 1500, 1000], 1)
    scores = evaluate(X, list(range(2, 9)), mixtures=True)
    choice = choose(scores)
    assert choice.k == 4, choice.scores
    assert "silhouette" in choice.reason
    assert scores.set_index("k").bic.idxmin() == 4
    labels = kmeans(choice.k, len(X), 0).fit(X).labels_
    assert adjusted_rand_score(y, labels) > 0.95


def test_a_minimum_segment_size_rules_out_tiny_segments() -> None:
    X, _ = _blobs([4000, 4000, 60], 2)  # a third group of under 1 %
    scores = evaluate(X, [2, 3, 4]).set_index("k")
    assert scores.loc[3, "smallest_share"] < 0.01  # k=3 finds the tiny group
    chosen = choose(scores.reset_index(), min_share=0.05)
    assert chosen.k == 2 and scores.loc[chosen.k, "smallest_share"] >= 0.05
    none = choose(scores.reset_index(), min_share=0.6)
    assert "no k keeps every segment" in none.reason and none.k == 2


def test_elbow_of_a_bent_curve() -> None:
    assert elbow([1, 2, 3, 4, 5, 6], [100, 40, 20, 17, 15, 14]) == 3


def test_too_few_customers_for_k_is_named() -> None:
    X, _ = _blobs([5, 5], 3)
    with pytest.raises(ValueError, match="10 customers are too few for k up to 8"):
        evaluate(X, [2, 8])
