"""A telecom subscriber table with a churn flag, written apart from custintel's simulator:
plan options spelled yes/no, a state and area code, usage by day, evening, night and
international calls with charges proportional to minutes (redundant columns, as real
billing exports have), customer-service calls, and ``Churn`` spelled ``T``/``F``.

Churn follows a logistic model with interactions and thresholds (heavy day users and
frequent callers to customer service leave; an international plan with many
international minutes does), so trees beat a linear model, and the true probability of
every row is known (``p_true``) for an oracle AUC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STATES = [
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID",
    "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC",
    "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
    "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY",
]  # fmt: skip


def table(rows: int = 3333, seed: int = 0) -> pd.DataFrame:
    """``rows`` subscribers; ``Churn`` is T/F, ``p_true`` the probability it was drawn
    with (drop it before training)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 240, rows)
    intl_plan = rng.random(rows) < 0.1
    vmail_plan = rng.random(rows) < 0.27
    vmail_msgs = np.where(vmail_plan, rng.poisson(29, rows), 0)
    day_min = np.clip(rng.normal(180, 54, rows), 0, None)
    eve_min = np.clip(rng.normal(200, 50, rows), 0, None)
    night_min = np.clip(rng.normal(200, 50, rows), 0, None)
    intl_min = np.clip(rng.normal(10, 2.8, rows), 0, None)
    intl_calls = rng.poisson(4.5, rows)
    service_calls = rng.poisson(1.5, rows)
    state = rng.choice(STATES, rows)
    z = (
        -3.4
        + 2.6 * (day_min > 245)
        + 0.012 * np.clip(day_min - 160, 0, None)
        + 0.006 * np.clip(eve_min - 200, 0, None)
        + 1.9 * intl_plan
        + 1.4 * (intl_plan & (intl_min > 13))
        + 1.2 * (intl_calls < 3) * intl_plan
        - 0.9 * vmail_plan
        + 2.4 * (service_calls >= 4) * (day_min < 200)
        + 0.5 * (service_calls >= 4)
        + 0.3 * np.isin(state, ["NJ", "TX", "MD", "SC", "MI"])
    )
    p_true = 1 / (1 + np.exp(-z))
    churn = rng.random(rows) < p_true
    return pd.DataFrame(
        {
            "State": state,
            "Account Length": tenure,
            "Area Code": rng.choice([408, 415, 510], rows),
            "Phone": [f"{rng.integers(327, 422)}-{rng.integers(1000, 9999)}" for _ in range(rows)],
            "Intl Plan": np.where(intl_plan, "yes", "no"),
            "VMail Plan": np.where(vmail_plan, "yes", "no"),
            "VMail Message": vmail_msgs,
            "Day Mins": day_min.round(1),
            "Day Calls": rng.poisson(100, rows),
            "Day Charge": (day_min * 0.17).round(2),
            "Eve Mins": eve_min.round(1),
            "Eve Calls": rng.poisson(100, rows),
            "Eve Charge": (eve_min * 0.085).round(2),
            "Night Mins": night_min.round(1),
            "Night Calls": rng.poisson(100, rows),
            "Night Charge": (night_min * 0.045).round(2),
            "Intl Mins": intl_min.round(1),
            "Intl Calls": intl_calls,
            "Intl Charge": (intl_min * 0.27).round(2),
            "CustServ Calls": service_calls,
            "Churn": np.where(churn, "T", "F"),
            "p_true": p_true,
        }
    )
