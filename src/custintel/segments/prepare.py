"""From catalog features to the matrix a clustering sees: checked, scaled, clipped.

Counts, money and days have long right tails: a few heavy buyers would otherwise own
a segment each, so they get a signed log first (or every feature is mapped to normal
quantiles). Missing values take the training median, every column is standardised, and
values beyond ``clip`` standard deviations are clipped so one outlier cannot pull a
centroid. An optional PCA keeps a share of the variance (or a number of components).

Everything learned (medians, scales, the PCA) comes from the fit rows and is applied
unchanged to later snapshots, so ``assign`` places customers with the same yardstick.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from custintel.core.errors import StageError

LOG_KINDS = frozenset({"count", "money", "days"})
NUMERIC_KINDS = frozenset({"count", "money", "days", "ratio", "score", "flag"})


def check_features(
    frame: pd.DataFrame, features: Sequence[str], catalog: pd.DataFrame, *, values: bool = True
) -> None:
    """Refuse features a clustering cannot use, naming each one and why (``values=False``:
    only that they are numeric features of the catalog)."""
    if not features:
        raise StageError("segments: no features chosen (set segments.features)")
    known = dict(zip(catalog.name, catalog.kind, strict=True))
    for name in features:
        if name not in known:
            near = difflib.get_close_matches(name, list(known), n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise StageError(
                f"segments: feature {name!r} is not in the feature catalog{hint}; "
                "`custintel features list` shows every feature"
            )
        if known[name] not in NUMERIC_KINDS:
            raise StageError(
                f"segments: feature {name!r} is a {known[name]}; clustering takes numeric features"
            )
        if not values:
            continue
        column = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        if column.isna().all():
            raise StageError(
                f"segments: feature {name!r} is missing for all {len(frame):,} customers"
            )
        present = column.dropna()
        if present.nunique() < 2:
            raise StageError(
                f"segments: feature {name!r} has the same value ({present.iloc[0]:g}) for "
                f"every customer, so it cannot tell segments apart; drop it from segments.features"
            )


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class Preparation:
    """Learned once from the fit rows; ``transform`` then applies it to any snapshot."""

    features: list[str]
    log_features: list[str]
    scaling: str = "log"
    clip: float = 4.0
    pca: float | None = None
    seed: int = 0
    medians: np.ndarray = field(default_factory=lambda: np.empty(0))
    scaler: StandardScaler | QuantileTransformer | None = None
    projection: PCA | None = None

    @classmethod
    def for_catalog(
        cls, features: Sequence[str], catalog: pd.DataFrame, **kw: object
    ) -> Preparation:
        kinds = dict(zip(catalog.name, catalog.kind, strict=True))
        logs = [f for f in features if kinds.get(f) in LOG_KINDS]
        return cls(list(features), logs, **kw)  # type: ignore[arg-type]

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        X = (
            frame[self.features]
            .apply(pd.to_numeric, errors="coerce")
            .to_numpy("float64", copy=True)
        )
        if self.scaling == "log":
            cols = [self.features.index(f) for f in self.log_features]
            X[:, cols] = signed_log1p(X[:, cols])
        return X

    def fit(self, frame: pd.DataFrame) -> Preparation:
        X = self._raw(frame)
        self.medians = np.nanmedian(X, axis=0)
        X = np.where(np.isnan(X), self.medians, X)
        if self.scaling == "quantile":
            self.scaler = QuantileTransformer(
                output_distribution="normal",
                n_quantiles=min(1000, len(X)),
                subsample=200_000,
                random_state=self.seed,
            ).fit(X)
        else:
            self.scaler = StandardScaler().fit(X)
        Z = np.clip(self.scaler.transform(X), -self.clip, self.clip)
        if self.pca is not None:
            n = self.pca if self.pca < 1 else min(int(self.pca), Z.shape[1])
            self.projection = PCA(n, svd_solver="full", random_state=self.seed).fit(Z)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The clustering matrix for ``frame`` (only after ``fit``)."""
        assert self.scaler is not None, "fit first"
        X = self._raw(frame)
        X = np.where(np.isnan(X), self.medians, X)
        Z = np.clip(self.scaler.transform(X), -self.clip, self.clip)
        if self.projection is not None:
            Z = self.projection.transform(Z)
        return np.ascontiguousarray(Z, dtype="float64")

    def scaled(self, frame: pd.DataFrame) -> np.ndarray:
        """Scaled and clipped feature values before any PCA (for profiles and plots)."""
        assert self.scaler is not None, "fit first"
        X = self._raw(frame)
        X = np.where(np.isnan(X), self.medians, X)
        return np.clip(self.scaler.transform(X), -self.clip, self.clip)

    def explained_variance(self) -> list[float]:
        """Share of variance per kept component (empty without PCA)."""
        if self.projection is None:
            return []
        return [float(v) for v in self.projection.explained_variance_ratio_]

    def clipped_share(self, frame: pd.DataFrame) -> dict[str, float]:
        """Share of rows clipped as outliers, per feature."""
        assert self.scaler is not None, "fit first"
        X = self._raw(frame)
        X = np.where(np.isnan(X), self.medians, X)
        S = np.abs(self.scaler.transform(X)) > self.clip
        return {f: float(S[:, i].mean()) for i, f in enumerate(self.features)}
