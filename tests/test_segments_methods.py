"""Segment pieces on planted data: each method finds planted groups, small segments merge
into their nearest neighbour, names follow the profile, bad features are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from custintel.core.config import SegmentsConfig
from custintel.core.errors import StageError
from custintel.segments.fit import fit_segments
from custintel.segments.methods import Clusterer
from custintel.segments.prepare import Preparation, check_features
from custintel.segments.profile import merge_small, persona, persona_names
from custintel.segments.validate import bootstrap_stability, distinctness, migration


def _blobs(sizes: list[int], seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 8.0 * np.eye(len(sizes), 3)
    X = np.vstack([rng.normal(c, spread, size=(n, 3)) for c, n in zip(centres, sizes, strict=True)])
    return X, np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("method", ["kmeans", "gmm", "ward", "hdbscan", "dbscan"])
def test_every_method_finds_planted_groups(method: str) -> None:
    X, y = _blobs([1500, 1000, 700], 1)
    c = Clusterer(method, k=3 if method in ("kmeans", "gmm", "ward") else None, sample=3000)
    labels = c.fit(X)
    assert adjusted_rand_score(y, labels) > 0.95
    sizes = np.bincount(labels)
    assert list(sizes) == sorted(sizes, reverse=True)  # segment 0 is the largest
    fresh, y2 = _blobs([300, 300, 300], 2)
    assert adjusted_rand_score(y2, c.predict(fresh)) > 0.95


def test_density_methods_say_when_they_find_nothing() -> None:
    X = np.random.default_rng(3).uniform(size=(2000, 3))
    with pytest.raises(StageError, match="dbscan found 1 dense cluster"):
        Clusterer("dbscan", eps=10.0).fit(X)


def test_segments_under_the_minimum_merge_into_the_nearest() -> None:
    X, y = _blobs([3000, 2000, 40], 4)
    X[y == 2] = X[y == 2] * 0.1 + np.array([7.0, 0.5, 0.0])  # tiny group beside group 0
    mapping, merges = merge_small(X, y, 0.03)
    merged = mapping[y]
    assert merges == [{"segment": 3, "into": 1, "customers": 40, "reason": merges[0]["reason"]}]
    assert "under the minimum 3%" in merges[0]["reason"]
    assert merged.max() == 1
    assert (merged[y == 2] == 0).all() and (merged[y == 1] == 1).all()  # joined its neighbour
    # nothing to merge: the mapping keeps every segment
    same, none = merge_small(X, y, 0.001)
    assert none == [] and list(same) == [0, 1, 2]


def test_persona_names_follow_the_profile() -> None:
    base = {"spend_per_year": 100.0, "tenure_days": 400, "days_since_last_purchase": 60}
    base["discount_share"] = 0.2
    assert persona({**base, "spend_per_year": 300, "days_since_last_purchase": 20}, base)[0] == (
        "High-Value Active"
    )
    assert persona({**base, "tenure_days": 90}, base)[0] == "New Promising"
    assert persona({**base, "spend_per_year": 40, "days_since_last_purchase": 200}, base)[0] == (
        "Low-Value Lapsed"
    )
    assert persona({**base, "discount_share": 0.6}, base)[0] == "Deal-Seeking Mid-Value"
    assert persona({**base, "orders_trend_90d": -0.5}, base)[1] == "Declining"
    # two look-alike segments are told apart, the same way every time
    frame = pd.DataFrame(
        {
            "net_spend_total": [100.0] * 6,
            "tenure_days": [400] * 6,
            "days_since_last_purchase": [60] * 6,
            "orders_trend_90d": [0.5, 0.5, -0.5, -0.5, 0, 0],
        }
    )
    seg = pd.Series(["S1", "S1", "S2", "S2", "S3", "S3"])
    names = persona_names(frame, seg, ["S1", "S2", "S3"], overrides={"Mid-Value": "Core"})
    assert names == {"S1": "Mid-Value Growing", "S2": "Mid-Value Declining", "S3": "Core"}
    assert persona_names(frame, seg, ["S1", "S2", "S3"]) == persona_names(
        frame, seg, ["S1", "S2", "S3"]
    )


def _catalog(frame: pd.DataFrame) -> pd.DataFrame:
    kinds = {"purchase_count": "count", "spend": "money", "share": "ratio", "city": "category"}
    return pd.DataFrame({"name": list(kinds), "kind": list(kinds.values())})


def test_bad_features_are_named() -> None:
    frame = pd.DataFrame(
        {"purchase_count": [1, 2, 3], "spend": [np.nan] * 3, "share": [0.5] * 3, "city": "x"}
    )
    cat = _catalog(frame)
    with pytest.raises(StageError, match="'spend' is missing for all 3 customers"):
        check_features(frame, ["purchase_count", "spend"], cat)
    with pytest.raises(StageError, match=r"'share' has the same value \(0.5\) for every"):
        check_features(frame, ["share"], cat)
    with pytest.raises(StageError, match="'spnd' is not in the feature catalog"):
        check_features(frame, ["spnd"], cat)
    with pytest.raises(StageError, match="'city' is a category"):
        check_features(frame, ["city"], cat)


def test_too_few_customers_for_k() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(200)],
            "purchase_count": rng.integers(0, 9, 200),
            "spend": rng.lognormal(4, 1, 200),
            "share": rng.random(200),
        }
    )
    cfg = SegmentsConfig(features=["purchase_count", "spend", "share"], k=50)
    with pytest.raises(
        StageError, match=r"customers with at least 2 purchases are too few for k=50"
    ):
        fit_segments(frame, _catalog(frame), cfg, version="v", as_of="2025-01-01")


def test_preparation_is_learned_once_and_clips_outliers() -> None:
    frame = pd.DataFrame({"spend": [10.0, 20, 30, np.nan, 1e9], "share": [0.1, 0.2, 0.3, 0.4, 0.5]})
    cat = pd.DataFrame({"name": ["spend", "share"], "kind": ["money", "ratio"]})
    prep = Preparation.for_catalog(["spend", "share"], cat, clip=1.5).fit(frame)
    Z = prep.transform(frame)
    assert np.abs(Z).max() <= 1.5 and not np.isnan(Z).any()
    assert prep.clipped_share(frame)["spend"] == pytest.approx(0.2)
    again = prep.transform(frame.iloc[:2])  # the same yardstick for any later rows
    assert np.allclose(again, Z[:2])
    pca = Preparation.for_catalog(["spend", "share"], cat, pca=1).fit(frame)
    assert pca.transform(frame).shape == (5, 1) and len(pca.explained_variance()) == 1


def test_validation_measures() -> None:
    X, y = _blobs([600, 400], 6)
    frame = pd.DataFrame({"a": X[:, 0], "noise": np.random.default_rng(7).normal(size=len(X))})
    d = distinctness(frame, y, ["a", "noise"]).set_index("feature")
    assert d.loc["a", "eta_squared"] > 0.8 and d.loc["noise", "epsilon_squared"] < 0.01

    def refit(rows: np.ndarray, seed: int):
        return Clusterer("kmeans", k=2, seed=seed).fit(rows) is not None and (
            lambda Z: np.where(Z[:, 0] > 4, 0, 1)
        )

    boot = bootstrap_stability(X, np.where(y == 0, 0, 1), refit, rounds=3)
    assert boot["ari_mean"] > 0.95 and set(boot["jaccard"]) == {0, 1}
    before = pd.DataFrame({"customer_id": ["a", "b", "c"], "segment_name": ["X", "X", "Y"]})
    after = pd.DataFrame({"customer_id": ["a", "b", "d"], "segment_name": ["X", "Y", "Y"]})
    m = migration(before, after)
    assert m.loc["X", "X"] == 1 and m.loc["X", "Y"] == 1 and m.loc["Y", "(gone)"] == 1
    assert m.loc["(not yet a customer)", "Y"] == 1


def _shop(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers of three planted behaviours, plus some with too little history."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n)
    count = np.array([40.0, 10.0, 20.0])[group] * rng.lognormal(0, 0.15, n)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "purchase_count": np.maximum(2, count.round()),
            "spend": np.array([2000.0, 150.0, 400.0])[group] * rng.lognormal(0, 0.2, n),
            "share": np.clip(np.array([0.1, 0.2, 0.8])[group] + rng.normal(0, 0.05, n), 0, 1),
        }
    )
    frame.loc[: n // 10, "purchase_count"] = rng.integers(0, 2, n // 10 + 1)
    return frame, group


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("kmeans", {}),
        ("kmeans", {"pca": 0.95, "scaling": "quantile"}),
        ("gmm", {}),
        ("ward", {}),
        ("hdbscan", {}),
        ("dbscan", {}),
    ],
)
def test_a_whole_fit_with_each_method(method: str, extra: dict) -> None:
    frame, group = _shop(3000, 8)
    cfg = SegmentsConfig(
        method=method,
        features=["purchase_count", "spend", "share"],
        k_range=(2, 6),
        bootstrap=3,
        **extra,
    )
    fitted = fit_segments(frame, _catalog(frame), cfg, version="v", as_of="2025-01-01")
    out, s = fitted.assignments, fitted.summary
    inside = out.segment_id.str.startswith("S").to_numpy()
    assert s["k"] == 3, s.get("reason")
    assert adjusted_rand_score(group[inside], out.segment_id[inside]) > 0.9
    assert s["bootstrap"]["ari_mean"] > 0.9 and s["surrogate"]["fidelity"] > 0.95
    assert set(out.segment_id[~inside]) <= {"NP", "EB"}
    assert len(set(fitted.model.names.values())) == len(fitted.model.names)
    if "pca" in extra:
        assert 0 < len(s["explained_variance"]) <= 3
    again = fitted.model.assign(frame)  # a fitted model places the same rows the same way
    assert (again.segment_id == out.segment_id).all()


def test_manual_merges_and_names_are_applied_and_recorded() -> None:
    frame, _ = _shop(3000, 9)
    cfg = SegmentsConfig(features=["purchase_count", "spend", "share"], k=3, bootstrap=0)
    first = fit_segments(frame, _catalog(frame), cfg, version="v", as_of="2025-01-01")
    names = first.model.names
    small, large = names["S3"], names["S1"]
    cfg = cfg.model_copy(update={"merge": {small: large}, "names": {large: "Core"}})
    merged = fit_segments(frame, _catalog(frame), cfg, version="v", as_of="2025-01-01")
    s, out = merged.summary, merged.assignments
    assert s["k"] == 2 and merged.model.k == 2
    assert s["merges"][0]["reason"].endswith(f"{small} into {large}")
    assert s["merges"][0]["customers"] == int((first.assignments.segment_id == "S3").sum())
    assert s["overrides"] == [{"segment_id": "S1", "automatic": large, "name": "Core"}]
    before = first.assignments.segment_id.isin(["S1", "S3"])
    assert (out.segment_name[before] == "Core").all()
    assert (merged.model.assign(frame).segment_id == out.segment_id).all()
    bad = cfg.model_copy(update={"merge": {"Nobody": large}})
    with pytest.raises(StageError, match="no segment is named 'Nobody'"):
        fit_segments(frame, _catalog(frame), bad, version="v", as_of="2025-01-01")
