"""Evaluation figures on scores whose answers are known, and the training table checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custintel.core.errors import StageError
from custintel.models import metrics
from custintel.models.dataset import prepare, time_split


def test_perfect_and_random_rankings() -> None:
    y = np.array([0, 0, 0, 1, 1])
    best = metrics.evaluate(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert best["auc"] == 1.0 and best["ks"] == 1.0 and best["pr_auc"] == 1.0
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 20_000)
    noise = metrics.evaluate(y, rng.random(20_000))
    assert abs(noise["auc"] - 0.5) < 0.02 and noise["ks"] < 0.03
    with pytest.raises(ValueError, match="both classes"):
        metrics.evaluate(np.zeros(5), np.ones(5))


def test_calibration_error_of_true_and_of_shifted_probabilities() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(int)
    assert metrics.expected_calibration_error(y, p) < 0.01
    assert metrics.expected_calibration_error(y, np.clip(p + 0.1, 0, 1)) == pytest.approx(
        0.1, abs=0.02
    )
    table = metrics.calibration_bins(y, p)
    assert table.customers.sum() == len(y) and len(table) == 10
    assert np.allclose(table.predicted, table.observed, atol=0.01)


def test_gains_lift_and_the_threshold_table() -> None:
    # 100 customers, 20 positives, all of them in the top two deciles of score
    p = np.linspace(1, 0, 100)
    y = np.r_[np.ones(20), np.zeros(80)].astype(int)
    g = metrics.gains(y, p)
    assert list(g.customers) == [10] * 10
    assert g.lift.iloc[0] == pytest.approx(5.0) and g.cum_gains.iloc[1] == pytest.approx(1.0)
    assert g.cum_lift.iloc[-1] == pytest.approx(1.0)
    t = metrics.threshold_table(y, p, cost=2.0, value=10.0, shares=(0.1, 0.5)).set_index("share")
    assert t.loc[0.1, "volume"] == 10 and t.loc[0.1, "observed_positives"] == 10
    assert t.loc[0.5, "cost"] == 100.0
    expected = p[:50].sum()
    assert t.loc[0.5, "expected_value"] == pytest.approx(10 * expected)
    assert t.loc[0.5, "roi"] == pytest.approx((10 * expected - 100) / 100)


def _table(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "as_of": np.repeat(pd.to_datetime(["2024-01-31", "2024-02-29", "2024-03-31"]), n // 3),
            "spend": rng.random(n),
            "top_category": rng.choice(["books", "toys", None], n),
            "always": 1.0,
            "email": [f"x{i}@example.com" for i in range(n)],
            "label": rng.integers(0, 2, n),
            "feature_set_version": "v1",
        }
    )


def test_training_tables_are_checked_and_split_by_time() -> None:
    ds = prepare(_table())
    assert ds.features == ["spend", "top_category"]
    assert any("always: constant" in n for n in ds.notes)
    assert any("email: an identifier" in n for n in ds.notes)
    assert ds.categorical == ["top_category"]
    split = time_split(ds.when)
    assert split.train == ["2024-01-31"] and split.validation == "2024-02-29"
    assert split.test == "2024-03-31"
    one = _table().assign(label=0)
    with pytest.raises(StageError, match="one class only"):
        prepare(one)
    with pytest.raises(StageError, match="needs at least three"):
        time_split(ds.when[ds.when < np.datetime64("2024-03-01")])
