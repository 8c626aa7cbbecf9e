"""Transforms learn from training rows only and apply the same way at scoring time."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from custintel.features.definitions import Params, feature_set
from custintel.features.transforms import OTHER, RareCategoryGrouper, preprocessor, signed_log1p

FS = feature_set(Params(categories=("books",)))
COLUMNS = [
    "spend_total",
    "days_since_last_purchase",
    "online_share",
    "holiday_buyer",
    "top_category",
]


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    cats = rng.choice(["books", "toys", "garden", "rare"], size=n, p=[0.5, 0.3, 0.195, 0.005])
    frame = pd.DataFrame(
        {
            "spend_total": rng.lognormal(4, 1.5, n),
            "days_since_last_purchase": np.where(
                rng.random(n) < 0.2, np.nan, rng.integers(1, 700, n)
            ),
            "online_share": rng.random(n),
            "holiday_buyer": rng.random(n) < 0.1,
            "top_category": pd.Series(cats, dtype=object).where(rng.random(n) > 0.05, None),
        }
    )
    # the target depends on the category: books buyers respond most
    p = np.select([cats == "books", cats == "toys"], [0.6, 0.3], 0.1)
    return frame, pd.Series((rng.random(n) < p).astype(int))


def test_fit_on_training_rows_then_apply_unchanged() -> None:
    train, y = _frame(4000, 1)
    new, _ = _frame(500, 2)
    pre = preprocessor(FS, COLUMNS, target="binary").fit(train, y)
    out = pre.transform(new)
    names = list(out.columns)
    # a missing indicator for the feature with gaps, imputed from the training median
    assert any("missingindicator_days_since_last_purchase" in c for c in names)
    assert out.notna().all().all()
    # quantile scaling of a logged, long-tailed amount: uniform on the training rows
    scaled = pre.transform(train)["log__spend_total"]
    assert scaled.min() >= 0 and scaled.max() <= 1 and abs(scaled.mean() - 0.5) < 0.02
    # the same numbers after a pickle round trip (how a model carries it to scoring)
    again = pickle.loads(pickle.dumps(pre)).transform(new)
    pd.testing.assert_frame_equal(out, again)


def test_target_encoding_is_cross_fitted_and_recovers_the_effect() -> None:
    train, y = _frame(4000, 3)
    pre = preprocessor(FS, COLUMNS, target="binary")
    crossed = pre.fit_transform(train, y)["cat__top_category"]
    plain = pre.transform(train)["cat__top_category"]
    # cross-fitting: each row's encoding comes from the other folds, not its own label
    assert not np.allclose(crossed, plain)
    by_cat = plain.groupby(train.top_category.fillna("(missing)").to_numpy()).mean()
    assert by_cat["books"] > by_cat["toys"] > by_cat["garden"]
    assert abs(by_cat["books"] - 0.6) < 0.05


def test_rare_and_unseen_categories_are_grouped() -> None:
    train = pd.DataFrame({"c": ["a"] * 60 + ["b"] * 30 + ["z"] * 2 + [None] * 8})
    g = RareCategoryGrouper(min_share=0.05, min_count=5).fit(train)
    out = g.transform(pd.DataFrame({"c": ["a", "z", "new", None]}))
    assert list(out.c) == ["a", OTHER, OTHER, "(missing)"]


def test_bins_and_standard_scaling() -> None:
    train, y = _frame(2000, 4)
    binned = preprocessor(FS, ["spend_total"], scaling="bins", bins=5).fit_transform(train, y)
    assert sorted(binned["log__spend_total"].unique()) == [0, 1, 2, 3, 4]
    std = preprocessor(FS, ["online_share"], scaling="standard").fit_transform(train, y)
    assert abs(std["num__online_share"].mean()) < 1e-9


def test_signed_log_keeps_refunds_negative() -> None:
    assert signed_log1p(np.array([-9.0, 0.0, 9.0])).tolist() == pytest.approx(
        [-np.log(10), 0, np.log(10)]
    )


def test_unknown_column_is_named() -> None:
    with pytest.raises(ValueError, match="no_such_feature"):
        preprocessor(FS, ["spend_total", "no_such_feature"])
