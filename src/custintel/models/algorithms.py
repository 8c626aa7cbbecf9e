"""The learners: a scaled, class-weighted logistic regression as the baseline and LightGBM
with early stopping; each calibrated afterwards on held-out rows.

The logistic pipeline takes a signed log of every number (long tails), the median with a
missing indicator, standard scaling, and one-hot categories (rare ones grouped). LightGBM
takes the frame as it is: it handles missing values and pandas categories natively.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier, early_stopping
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

MISSING = "(missing)"


def signed_log1p(x: Any) -> Any:
    return np.sign(x) * np.log1p(np.abs(x))


def as_text(x: pd.DataFrame) -> pd.DataFrame:
    """Categories as plain text with missing values named, for the one-hot encoder."""
    return x.astype("object").where(x.notna(), MISSING)


def logistic(seed: int = 0, class_weight: bool = True) -> Pipeline:
    numbers = Pipeline(
        [
            ("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
        ]
    )
    categories = Pipeline(
        [
            ("text", FunctionTransformer(as_text, feature_names_out="one-to-one")),
            ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.01)),
        ]
    )
    prep = ColumnTransformer(
        [
            ("numbers", numbers, make_column_selector(dtype_include="number")),
            ("categories", categories, make_column_selector(dtype_include="category")),
        ]
    )
    model = LogisticRegression(
        class_weight="balanced" if class_weight else None, max_iter=2000, random_state=seed
    )
    return Pipeline([("prep", prep), ("model", model)])


def lightgbm(params: dict[str, Any], seed: int = 0) -> LGBMClassifier:
    settings = {
        "n_estimators": 2000,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 100,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "n_jobs": 2,
        "deterministic": True,  # the same rows give the same model, whatever the threads
        "force_row_wise": True,
        "verbose": -1,
        **params,
    }
    return LGBMClassifier(random_state=seed, **settings)


def fit(
    algorithm: str,
    X: pd.DataFrame,
    y: np.ndarray,
    stop_X: pd.DataFrame,
    stop_y: np.ndarray,
    *,
    params: dict[str, Any],
    seed: int,
    patience: int = 100,
    class_weight: bool = True,
) -> Any:
    """A fitted learner; LightGBM stops when the AUC on ``stop_X`` has not improved for
    ``patience`` rounds."""
    if algorithm == "logistic":
        return logistic(seed, class_weight).fit(X, y)
    if algorithm == "lightgbm":
        model = lightgbm(params, seed)
        model.fit(
            X,
            y,
            eval_X=(stop_X,),
            eval_y=(stop_y,),
            eval_metric="auc",
            callbacks=[early_stopping(patience, verbose=False)],
        )
        return model
    raise ValueError(f"unknown algorithm {algorithm!r}")


def calibrate(model: Any, X: pd.DataFrame, y: np.ndarray, method: str) -> CalibratedClassifierCV:
    """Map the fitted model's scores to probabilities on rows it never saw."""
    return CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(X, y)
