"""What each segment is: its size, its revenue, its features against the base, its name.

A persona name is read off the profile the way a marketer would describe it:

- a value tier from net spend per year as a customer (so a new customer is not low-value
  for being new) against the clustered base: High-Value at 1.5 times the base mean or
  more, Low-Value at 0.6 or less, else Mid-Value;
- a state from tenure and recency against the base medians: New (tenure at most half the
  base's), Lapsed / Lapsing (days since the last purchase at least 2.5 / 1.5 times the
  base's), Active (at most 0.6 times), else nothing is said;
- for New customers the tier becomes "Promising" unless Low-Value ("New Promising");
- a discount share of 1.5 times the base or more makes them Deal-Seeking.

Duplicates are told apart by the 90-day order trend (Growing / Declining), then by the
most distinguishing feature, then by number, always in segment order, so the same profile
always gets the same name. ``overrides`` maps an automatic name to the user's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

VALUE = "net_spend_total"
ANNUAL = "spend_per_year"
NAMING = (
    "net_spend_total",
    "email_open_rate_decayed",
    "tenure_days",
    "days_since_last_purchase",
    "discount_share",
    "orders_trend_90d",
)


def _num(frame: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(frame[name], errors="coerce").astype("float64")


def profiles(frame: pd.DataFrame, segment: pd.Series, features: Sequence[str]) -> pd.DataFrame:
    """One row per segment: customers, shares, revenue share, mean of each feature and its
    index against the base (100 = the base mean)."""
    cols = list(dict.fromkeys([*features, *[c for c in NAMING if c in frame]]))
    data = pd.DataFrame({c: _num(frame, c) for c in cols})
    data["segment"] = segment.to_numpy()
    g = data.groupby("segment", sort=True)
    out = pd.DataFrame({"customers": g.size()})
    out["share"] = out.customers / len(data)
    if VALUE in data:
        revenue = g[VALUE].sum().clip(lower=0)
        out["revenue_share"] = revenue / revenue.sum() if revenue.sum() > 0 else 0.0
    base = data[cols].mean()
    for c in cols:
        out[f"mean_{c}"] = g[c].mean()
        # An index needs a positive yardstick: trends and refunds can be negative.
        positive = base[c] > 0 and data[c].min() >= 0
        out[f"index_{c}"] = 100 * g[c].mean() / base[c] if positive else np.nan
    return out


def distinguishing(
    scaled: np.ndarray, segment: np.ndarray, features: Sequence[str], top: int = 3
) -> dict[object, list[tuple[str, float]]]:
    """Per segment, the features whose scaled mean lies farthest from the base mean
    (in base standard deviations, signed)."""
    mean, sd = scaled.mean(0), scaled.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    out: dict[object, list[tuple[str, float]]] = {}
    for s in np.unique(segment):
        d = (scaled[segment == s].mean(0) - mean) / sd
        order = np.argsort(-np.abs(d))[:top]
        out[s] = [(features[i], round(float(d[i]), 2)) for i in order]
    return out


def _ratio(value: float, base: float) -> float:
    if not np.isfinite(value) or not np.isfinite(base) or base == 0:
        return 1.0
    return value / base


def persona(row: Mapping[str, float], base: Mapping[str, float]) -> tuple[str, str]:
    """(name, trend word) for one segment's means/medians against the base."""
    value = _ratio(row.get(ANNUAL, np.nan), base.get(ANNUAL, np.nan))
    tier = "High-Value" if value >= 1.5 else "Low-Value" if value <= 0.6 else "Mid-Value"
    tenure = _ratio(row.get("tenure_days", np.nan), base.get("tenure_days", np.nan))
    recency = _ratio(
        row.get("days_since_last_purchase", np.nan), base.get("days_since_last_purchase", np.nan)
    )
    if tenure <= 0.5:
        state = "New"
    elif recency >= 2.5:
        state = "Lapsed"
    elif recency >= 1.5:
        state = "Lapsing"
    elif recency <= 0.6:
        state = "Active"
    else:
        state = ""
    if state == "New":
        name = "New Promising" if tier != "Low-Value" else "New Low-Value"
    else:
        name = f"{tier} {state}".strip()
    if _ratio(row.get("discount_share", np.nan), base.get("discount_share", np.nan)) >= 1.5:
        name = f"Deal-Seeking {name}"
    trend = row.get("orders_trend_90d", np.nan)
    word = "Growing" if trend >= 0.15 else "Declining" if trend <= -0.15 else ""
    return name, word


def persona_names(
    frame: pd.DataFrame,
    segment: pd.Series,
    order: Sequence[object],
    top_feature: Mapping[object, Sequence[tuple[str, float]]] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[object, str]:
    """A unique, deterministic name per segment (in ``order``), with overrides applied."""
    cols = [c for c in NAMING if c in frame]
    data = pd.DataFrame({c: _num(frame, c) for c in cols})
    if VALUE in data and "tenure_days" in data:
        data[ANNUAL] = data[VALUE] / data.tenure_days.clip(lower=30) * 365
        cols.append(ANNUAL)
    data["segment"] = segment.to_numpy()
    medians = data.groupby("segment")[cols].median()
    means = data.groupby("segment")[cols].mean()
    base_median, base_mean = data[cols].median(), data[cols].mean()
    by_mean = (ANNUAL, "discount_share", "orders_trend_90d")
    drafts: dict[object, tuple[str, str]] = {}
    for s in order:
        row = medians.loc[s].to_dict()
        base = base_median.to_dict()
        for c in by_mean:
            row[c] = means.loc[s].get(c, np.nan)
            base[c] = base_mean.get(c, np.nan)
        drafts[s] = persona(row, base)
    names = {s: d[0] for s, d in drafts.items()}
    for step in ("trend", "feature", "number"):
        clash = pd.Series(names).duplicated(keep=False)
        if not clash.any():
            break
        for s in [s for s in order if clash[s]]:
            if step == "trend" and drafts[s][1]:
                names[s] = f"{names[s]} {drafts[s][1]}"
            elif step == "feature" and top_feature and top_feature.get(s):
                feat, d = top_feature[s][0]
                names[s] = f"{names[s]} ({'high' if d > 0 else 'low'} {feat.replace('_', ' ')})"
        if step == "number":
            seen: dict[str, int] = {}
            for s in order:
                if clash[s]:
                    seen[names[s]] = seen.get(names[s], 0) + 1
                    names[s] = f"{names[s]} {seen[names[s]]}"
    overrides = overrides or {}
    return {s: overrides.get(n, n) for s, n in names.items()}


def merge_small(
    Z: np.ndarray, labels: np.ndarray, min_share: float, *, least: int = 2
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """Merge segments under ``min_share`` into the one with the nearest centroid, smallest
    first, keeping at least ``least`` segments. Returns a mapping old -> new cluster number
    (renumbered by size) and a record of each merge."""
    k = int(labels.max()) + 1
    target = np.arange(k)
    sizes = np.bincount(labels, minlength=k).astype(float)
    centres = np.vstack(
        [Z[labels == c].mean(0) if sizes[c] else np.zeros(Z.shape[1]) for c in range(k)]
    )
    n = len(labels)
    merges: list[dict[str, object]] = []
    alive = set(range(k))
    while len(alive) > least:
        small = sorted((c for c in alive if sizes[c] / n < min_share), key=lambda c: (sizes[c], c))
        if not small:
            break
        c = small[0]
        others = sorted(alive - {c})
        d = ((centres[others] - centres[c]) ** 2).sum(1)
        into = others[int(np.argmin(d))]
        merges.append(
            {
                "segment": c + 1,
                "into": into + 1,
                "customers": int(sizes[c]),
                "reason": f"{sizes[c] / n:.1%} of customers is under the minimum {min_share:.0%}",
            }
        )
        w = sizes[c] + sizes[into]
        centres[into] = (centres[into] * sizes[into] + centres[c] * sizes[c]) / w
        sizes[into] = w
        sizes[c] = 0
        target[target == c] = into
        alive.discard(c)
    survivors = sorted(alive, key=lambda c: (-sizes[c], c))
    renumber = {c: i for i, c in enumerate(survivors)}
    return np.array([renumber[t] for t in target]), merges
