"""Lifetime value from a purchase model and a spend model, and their holdout check.

CLV over a horizon is margin x expected spend per purchase x the expected purchases of
each month, each month discounted at the annual rate from its end: the purchase models
give cumulative expected purchases E[Y(t)], so a month's purchases are differences of
E[Y] at its ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from custintel.clv.models import BetaGeo, GammaGamma, ModifiedBetaGeo, ParetoNBD

PURCHASE_MODELS = {"bgnbd": BetaGeo, "mbgnbd": ModifiedBetaGeo, "pareto": ParetoNBD}
MONTH_DAYS = 365.25 / 12


def purchase_model(name: str) -> Any:
    if name not in PURCHASE_MODELS:
        raise ValueError(f"clv: unknown model {name!r}; choose from {', '.join(PURCHASE_MODELS)}")
    return PURCHASE_MODELS[name]()


def lifetime_value(
    purchases: Any,
    spend: GammaGamma,
    summary: pd.DataFrame,
    *,
    horizon_days: int,
    discount: float,
    margin: float,
    unit_days: float,
) -> pd.DataFrame:
    """Per customer: P(alive), expected purchases over the horizon, expected spend per
    purchase and the discounted CLV."""
    x, t_x, T = summary.frequency, summary.recency, summary["T"]
    months = int(np.ceil(horizon_days / MONTH_DAYS))
    ends = np.minimum(np.arange(1, months + 1) * MONTH_DAYS, horizon_days)
    previous = np.zeros(len(summary))
    value = np.zeros(len(summary))
    for end in ends:
        cumulative = purchases.conditional_expected_purchases(end / unit_days, x, t_x, T)
        value += (cumulative - previous) / (1 + discount) ** (end / 365.25)
        previous = cumulative
    per_purchase = spend.expected_spend(x, summary.monetary)
    return pd.DataFrame(
        {
            "customer_id": summary.customer_id.to_numpy(),
            "p_alive": purchases.probability_alive(x, t_x, T),
            "expected_purchases": previous,
            "expected_spend": per_purchase,
            "clv": margin * per_purchase * value,
        }
    )


def holdout_check(purchases: Any, summary: pd.DataFrame) -> dict[str, Any]:
    """Predicted against actual repeat purchases in the holdout: in total, by number of
    calibration purchases (0..6, 7+), and per customer against two naive guesses (none;
    the calibration rate carried on)."""
    length = float(summary.holdout_length.iloc[0])
    x, t_x, T = summary.frequency, summary.recency, summary["T"]
    predicted = purchases.conditional_expected_purchases(length, x, t_x, T)
    actual = summary.holdout_frequency.to_numpy(float)
    same = x.to_numpy(float) / T.to_numpy(float) * length
    group = np.minimum(x.to_numpy(), 7)
    by = (
        pd.DataFrame({"frequency": group, "predicted": predicted, "actual": actual})
        .groupby("frequency")
        .agg(
            customers=("actual", "size"), predicted=("predicted", "mean"), actual=("actual", "mean")
        )
        .reset_index()
    )

    def errors(guess: np.ndarray) -> dict[str, float]:
        return {
            "mae": float(np.mean(np.abs(guess - actual))),
            "rmse": float(np.sqrt(np.mean((guess - actual) ** 2))),
        }

    return {
        "customers": len(summary),
        "holdout_weeks": length,
        "predicted": float(predicted.sum()),
        "actual": float(actual.sum()),
        "aggregate_error": float(predicted.sum() / actual.sum() - 1) if actual.sum() else None,
        "model": errors(predicted),
        "naive_zero": errors(np.zeros_like(actual)),
        "naive_same": errors(same),
        "by_frequency": by.to_dict(orient="records"),
    }


MODEL_NAMES = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto": "Pareto/NBD"}
