"""Scoring: customers' features in, scores with deciles, tiers and reasons out.

One function for every path that scores, so a customer gets the same answer from the
nightly batch (:func:`score_customers`) and, one at a time, from the real-time service
(:func:`score_rows` on a few rows, with the batch's decile cut-offs from
:func:`decile_cutoffs`). The caller decides who may be scored (consent) and where the
result is written; nothing here reads or writes the warehouse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from custintel.models.dataset import feature_frame
from custintel.models.explain import contributions, dependence, reasons
from custintel.models.train import PropensityModel

Progress = Callable[[str, int, int], None]

TIERS = (("high", 2), ("medium", 5), ("low", 10))
"""Tier by decile: deciles 1-2 high, 3-5 medium, 6-10 low."""


@dataclass
class Scored:
    """Scores of a population, in the order of its customers."""

    customer_id: np.ndarray
    score: np.ndarray
    decile: np.ndarray
    tier: np.ndarray
    reasons: list[str]
    reasons_method: str  # exact | binned SHAP dependence
    reason_agreement: float | None = None
    reason_sample: int | None = None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": self.customer_id,
                "score": self.score,
                "decile": self.decile,
                "tier": self.tier,
                "reasons": self.reasons,
            }
        )


def deciles(score: np.ndarray) -> np.ndarray:
    """Decile of each score within its population (1 = highest; ties by position)."""
    rank = np.empty(len(score), dtype=int)
    rank[np.argsort(-score, kind="stable")] = np.arange(len(score))
    return (rank * 10 // max(len(score), 1) + 1).astype("int64")


def tiers(decile: np.ndarray) -> np.ndarray:
    out = np.full(len(decile), TIERS[-1][0], dtype=object)
    for name, last in reversed(TIERS[:-1]):
        out[decile <= last] = name
    return out.astype(str)


def decile_cutoffs(score: np.ndarray) -> list[float]:
    """The lowest score of deciles 1 to 9 of a scored population: a new customer's
    decile is one more than the number of cut-offs above their score."""
    d = deciles(score)
    return [float(score[d == k].min()) if (d == k).any() else float("inf") for k in range(1, 10)]


def decile_of(score: float, cutoffs: list[float]) -> int:
    """A new score's decile: a score equal to a decile's lowest belongs to that decile
    (in the batch, ties across a boundary are split by position)."""
    return 1 + sum(score < c for c in cutoffs)


def score_customers(
    model: PropensityModel,
    frame: pd.DataFrame,
    words: dict[str, str],
    *,
    chunk_rows: int,
    exact_reasons_rows: int,
    seed: int = 0,
    keep: np.ndarray | None = None,
    progress: Progress | None = None,
    label: str = "",
) -> Scored:
    """Score every row of a feature frame (``customer_id`` plus the model's features), or
    the rows ``keep`` marks (the ones consent allows).

    Reasons are exact TreeSHAP up to ``exact_reasons_rows`` customers; beyond, exact
    pushes on a sample are tabulated by value (binned SHAP dependence) and read off for
    everyone, with the top-reason agreement on held-out rows reported.
    """
    # typed before filtering: a filtered frame's scattered columns type ten times slower
    X_all = feature_frame(frame, model.features, model.categories)
    if keep is not None:
        frame = frame.loc[keep, ["customer_id"]].reset_index(drop=True)
        X_all = X_all[keep].reset_index(drop=True)
    approx = None
    if len(frame) > exact_reasons_rows:
        # exact TreeSHAP for everyone would take minutes: tabulate it on a sample
        approx = dependence(model.members, X_all, seed=seed)
    scores, why = [], []
    for start in range(0, len(frame), chunk_rows):
        X = X_all.iloc[start : start + chunk_rows]
        scores.append(model.predict(X))
        pushes = approx.pushes(X) if approx is not None else contributions(model.members, X)
        why += ["[]"] * len(X) if pushes is None else reasons(pushes, X, words)
        if progress:
            progress(f"scoring {label}".strip(), min(start + chunk_rows, len(frame)), len(frame))
    score = np.concatenate(scores) if scores else np.empty(0)
    decile = deciles(score)
    return Scored(
        customer_id=frame.customer_id.to_numpy(),
        score=score,
        decile=decile,
        tier=tiers(decile),
        reasons=why,
        reasons_method="exact" if approx is None else "binned SHAP dependence",
        reason_agreement=None if approx is None else approx.agreement,
        reason_sample=None if approx is None else approx.sample_rows,
    )


def score_rows(
    model: PropensityModel,
    rows: pd.DataFrame,
    words: dict[str, str],
    cutoffs: list[float],
) -> Scored:
    """Score a few rows against a scored population's decile cut-offs (exact reasons)."""
    X = feature_frame(rows, model.features, model.categories)
    score = model.predict(X)
    pushes = contributions(model.members, X)
    decile = np.array([decile_of(s, cutoffs) for s in score], dtype="int64")
    return Scored(
        customer_id=rows.customer_id.to_numpy()
        if "customer_id" in rows
        else np.array([None] * len(rows)),
        score=score,
        decile=decile,
        tier=tiers(decile),
        reasons=["[]"] * len(X) if pushes is None else reasons(pushes, X, words),
        reasons_method="exact",
    )
