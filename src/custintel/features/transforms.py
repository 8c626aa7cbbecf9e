"""Transforms fitted on training data and applied unchanged at scoring time.

Everything is a scikit-learn estimator, so a fitted preprocessor pickles with the model
and a pipeline cross-validates without leaking: medians, quantiles, bin edges, frequent
categories and target encodings are learned in ``fit`` from the training rows only.

:func:`preprocessor` picks a treatment per feature from the catalog's ``kind``:
counts, money and days get a signed log; every numeric feature gets a median with a
missing indicator, then the chosen scaling (quantile, standard, bins or none); categories
have rare values grouped, then target encoding with cross-fitting (scikit-learn's
``TargetEncoder``) when there is a target, else one-hot columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    QuantileTransformer,
    StandardScaler,
    TargetEncoder,
)

from custintel.features.catalog import FeatureSet

OTHER = "(other)"
MISSING = "(missing)"
LOG_KINDS = {"count", "money", "days"}
Scaling = Literal["quantile", "standard", "bins", "none"]


def signed_log1p(x: Any) -> Any:
    """log(1 + |x|) with the sign kept: tames long tails, defined for refunds below 0."""
    return np.sign(x) * np.log1p(np.abs(x))


def log_transformer() -> FunctionTransformer:
    return FunctionTransformer(signed_log1p, feature_names_out="one-to-one")


class RareCategoryGrouper(TransformerMixin, BaseEstimator):
    """Categories seen in fewer than ``min_share`` of the training rows (or fewer than
    ``min_count``) become ``(other)``, as do categories first seen at scoring time;
    missing values become ``(missing)``.

    Written here because scikit-learn groups infrequent categories only inside its
    one-hot and ordinal encoders, and target encoding needs the grouping first.
    """

    def __init__(self, min_share: float = 0.01, min_count: int = 20) -> None:
        self.min_share = min_share
        self.min_count = min_count

    def fit(self, X: pd.DataFrame, y: Any = None) -> RareCategoryGrouper:
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.kept_: dict[Any, set[str]] = {}
        for col in frame.columns:
            counts = frame[col].dropna().astype(str).value_counts()
            floor = max(self.min_count, self.min_share * len(frame))
            self.kept_[col] = set(counts[counts >= floor].index)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(X, columns=self.feature_names_in_)
        out = {}
        for col in frame.columns:
            values = frame[col]
            text = values.astype(object).where(values.isna(), values.astype(str))
            grouped = text.where(text.isin(self.kept_[col]) | text.isna(), OTHER)
            out[col] = grouped.where(grouped.notna(), MISSING).astype(object)
        return pd.DataFrame(out, index=frame.index)

    def get_feature_names_out(self, input_features: Iterable[str] | None = None) -> np.ndarray:
        return np.asarray(self.feature_names_in_, dtype=object)


def _to_float(x: Any) -> Any:
    return pd.DataFrame(x).astype("float64")


def _numeric(scaling: Scaling, log: bool, bins: int) -> Pipeline:
    steps: list[tuple[str, Any]] = [
        ("float", FunctionTransformer(_to_float, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
    ]
    if log:
        steps.append(("log", log_transformer()))
    if scaling == "quantile":
        steps.append(
            ("scale", QuantileTransformer(n_quantiles=200, subsample=200_000, random_state=0))
        )
    elif scaling == "standard":
        steps.append(("scale", StandardScaler()))
    elif scaling == "bins":
        steps.append(("bins", KBinsDiscretizer(n_bins=bins, encode="ordinal", strategy="quantile")))
    return Pipeline(steps)


def preprocessor(
    features: FeatureSet,
    columns: list[str],
    *,
    target: Literal["binary", "continuous", "none"] = "binary",
    scaling: Scaling = "quantile",
    bins: int = 10,
    min_category_share: float = 0.01,
    random_state: int = 0,
) -> ColumnTransformer:
    """A ColumnTransformer for ``columns`` of a feature set, chosen by each feature's kind.

    Unknown column names fail here with the name, not later inside scikit-learn.
    """
    known = set(features.names())
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(f"not in feature set {features.name!r}: {', '.join(unknown)}")
    kinds = {c: features.get(c) for c in columns}
    logged = [
        c for c, f in kinds.items() if f.dtype in ("int64", "float64") and f.kind in LOG_KINDS
    ]
    plain = [
        c for c, f in kinds.items() if f.dtype in ("int64", "float64") and f.kind not in LOG_KINDS
    ]
    flags = [c for c, f in kinds.items() if f.dtype == "boolean"]
    cats = [c for c, f in kinds.items() if f.dtype == "string"]
    parts: list[tuple[str, Any, list[str]]] = []
    if logged:
        parts.append(("log", _numeric(scaling, True, bins), logged))
    if plain:
        parts.append(("num", _numeric(scaling, False, bins), plain))
    if flags:
        parts.append(
            (
                "flag",
                Pipeline(
                    [
                        ("float", FunctionTransformer(_to_float, feature_names_out="one-to-one")),
                        (
                            "impute",
                            SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                        ),
                    ]
                ),
                flags,
            )
        )
    if cats:
        encoder: Any
        if target == "none":
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        else:
            folds = (StratifiedKFold if target == "binary" else KFold)(
                n_splits=5, shuffle=True, random_state=random_state
            )
            encoder = TargetEncoder(target_type=target, smooth="auto", cv=folds)
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("rare", RareCategoryGrouper(min_share=min_category_share)),
                        ("encode", encoder),
                    ]
                ),
                cats,
            )
        )
    out = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=True)
    return out.set_output(transform="pandas")
