"""Ways to treat an imbalanced target, compared on the same rows.

``none`` learns from the rows as they are; ``class_weight`` weighs each class inversely
to its frequency; ``undersample`` and ``oversample`` (imbalanced-learn) drop majority rows
or repeat minority rows at random until the classes are even. Every variant is then
calibrated on the same held-out rows, because re-weighting and resampling move the raw
scores away from probabilities; what matters is whether ranking (AUC, PR AUC) improves
after calibration puts the probabilities back. The comparison is reported on the
out-of-time test and never used to choose: the configured strategy is the one kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler

STRATEGIES = ("none", "class_weight", "undersample", "oversample")


def rows_for(
    strategy: str, X: pd.DataFrame, y: np.ndarray, seed: int
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """The training rows and extra LightGBM settings of a strategy."""
    if strategy == "none":
        return X, y, {}
    if strategy == "class_weight":
        return X, y, {"class_weight": "balanced"}
    if strategy in ("undersample", "oversample"):
        sampler = (RandomUnderSampler if strategy == "undersample" else RandomOverSampler)(
            random_state=seed
        )
        # resample row positions, not the frame: keeps NaN and pandas categories intact
        picked, y_new = sampler.fit_resample(np.arange(len(y)).reshape(-1, 1), y)
        order = np.argsort(picked[:, 0], kind="stable")
        rows = picked[order, 0]
        return X.iloc[rows].reset_index(drop=True), np.asarray(y_new)[order], {}
    raise ValueError(f"unknown imbalance strategy {strategy!r}; choose from {STRATEGIES}")
