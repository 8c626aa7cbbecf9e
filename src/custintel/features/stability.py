"""Feature stability: the population stability index (PSI) of each feature between a
reference as-of date and a later one.

Bins come from the reference only: deciles of a numeric feature (fewer when values
repeat), each value of a category or flag, and one bin for missing values, so a feature
that starts to go missing shows up too. PSI = sum over bins of (cur - ref) * ln(cur / ref)
with shares floored at 1e-4 so an empty bin does not give an infinite index. The usual
reading: below 0.1 stable, 0.1 to 0.25 worth watching, above 0.25 unstable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WATCH = 0.1
UNSTABLE = 0.25
FLOOR = 1e-4
MISSING = "(missing)"


@dataclass(frozen=True)
class Bins:
    """How one feature is cut: numeric edges, or category values."""

    edges: np.ndarray | None = None
    categories: tuple[str, ...] = ()

    def labels(self) -> list[str]:
        if self.edges is None:
            return [*self.categories, "(other)", MISSING]
        e = self.edges
        inner = [f"[{_fmt(e[i])}, {_fmt(e[i + 1])})" for i in range(len(e) - 1)]
        return [f"< {_fmt(e[0])}", *inner, f">= {_fmt(e[-1])}", MISSING]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def reference_bins(values: pd.Series, n_bins: int = 10) -> Bins:
    """Bins from the reference values (quantile edges, or the categories seen)."""
    present = values.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        cats = sorted(present.astype(str).unique())
        return Bins(categories=tuple(cats))
    x = present.to_numpy(dtype="float64")
    if len(x) == 0:
        return Bins(edges=np.array([0.0]))
    inner = np.quantile(x, np.linspace(0, 1, n_bins + 1)[1:-1])
    return Bins(edges=np.unique(np.concatenate([[x.min()], inner])))


def shares(values: pd.Series, bins: Bins) -> np.ndarray:
    """Share of values in each bin (same order as ``bins.labels()``)."""
    n = len(values)
    missing = values.isna().to_numpy()
    if bins.edges is None:
        text = values.astype("string")
        counts = [int(((text == c) & ~missing).sum()) for c in bins.categories]
        other = int((~missing).sum()) - sum(counts)
        out = np.array([*counts, other, int(missing.sum())], dtype="float64")
    else:
        x = values.to_numpy(dtype="float64", na_value=np.nan)[~missing]
        idx = np.searchsorted(bins.edges, x, side="right")  # 0: below the first edge
        out = np.bincount(idx, minlength=len(bins.edges) + 1).astype("float64")
        out = np.append(out, missing.sum())
    return out / max(n, 1)


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.maximum(ref, FLOOR)
    c = np.maximum(cur, FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def flag(value: float) -> str:
    if value > UNSTABLE:
        return "unstable"
    if value > WATCH:
        return "watch"
    return "stable"


def stability(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """PSI per feature, with the flag and the bin shares (for the report's plots)."""
    rows = []
    for name in features:
        bins = reference_bins(reference[name])
        ref, cur = shares(reference[name], bins), shares(current[name], bins)
        value = psi(ref, cur)
        rows.append(
            {
                "feature": name,
                "psi": round(value, 6),
                "flag": flag(value),
                "missing_ref": round(float(reference[name].isna().mean()), 6),
                "missing_cur": round(float(current[name].isna().mean()), 6),
                "bins": bins.labels(),
                "ref_shares": ref.round(6).tolist(),
                "cur_shares": cur.round(6).tolist(),
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values(["psi", "feature"], ascending=[False, True]).reset_index(drop=True)
