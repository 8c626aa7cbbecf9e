"""The simulated retailer's people: latent personas, demographics and buying parameters.

Each person belongs to one persona. A persona fixes the distributions a person's latent
parameters are drawn from, in the BG/NBD and Gamma-Gamma form the CLV models assume:

- buying rate ``lam`` (purchases per week while alive) ~ Gamma(shape r, rate alpha);
- dropout probability ``p`` after each repeat purchase ~ Beta(a, b);
- spend scale ``nu`` ~ Gamma(shape q, rate gamma); each order's spend ~ Gamma(shape
  spend_p, rate nu), so a person's mean spend is spend_p / nu.

Everything is drawn with one seeded numpy Generator, vectorised over people, so the same
seed gives the same people. The truth (persona, lam, p, nu) is returned beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Persona:
    """A latent customer type and the distributions of its members' parameters."""

    name: str
    share: float
    r: float
    alpha: float
    a: float
    b: float
    spend_p: float
    spend_q: float
    spend_gamma: float
    online_share: float
    discount_affinity: float
    favourites: tuple[str, ...] = ()
    return_rate: float = 0.05
    open_rate: float = 0.25
    joined: tuple[float, float] = (0.0, 1.0)
    """When the first purchase falls, as fractions of the history (uniform in between)."""


BEHAVIOUR_CONCENTRATION = 60.0
"""Behaviour shares are Beta around the persona's value with this concentration."""

# Members of one persona are alike in what a shop can see (how often and how recently
# they buy, how much, where, with what discount, whether they read e-mails), so the
# personas are a ground truth a segmentation can be scored against. Gamma shapes of 16
# keep buying rates and spend levels within about 25 % of the persona's mean.
PERSONAS: tuple[Persona, ...] = (
    # mean rate r/alpha per week; mean dropout a/(a+b); mean spend spend_p*gamma/(q-1)
    Persona(
        "loyal_high_value",
        0.15,
        r=16.0,
        alpha=33.0,
        a=1.0,
        b=150.0,
        spend_p=6.0,
        spend_q=16.0,
        spend_gamma=225.0,
        online_share=0.5,
        discount_affinity=0.08,
        favourites=("apparel", "shoes", "electronics"),
        return_rate=0.06,
        open_rate=0.5,
        joined=(0.0, 0.5),
    ),
    Persona(
        "bargain_hunter",
        0.25,
        r=16.0,
        alpha=75.0,
        a=1.0,
        b=60.0,
        spend_p=6.0,
        spend_q=16.0,
        spend_gamma=50.0,
        online_share=0.8,
        discount_affinity=0.85,
        favourites=("apparel", "toys", "home"),
        return_rate=0.1,
        open_rate=0.3,
        joined=(0.0, 0.8),
    ),
    Persona(
        "new_promising",
        0.20,
        r=16.0,
        alpha=53.0,
        a=1.0,
        b=100.0,
        spend_p=6.0,
        spend_q=16.0,
        spend_gamma=112.0,
        online_share=0.85,
        discount_affinity=0.3,
        favourites=("beauty", "apparel", "books"),
        return_rate=0.05,
        open_rate=0.45,
        joined=(0.8, 1.0),
    ),
    Persona(
        "lapsing_high_value",
        0.10,
        r=16.0,
        alpha=33.0,
        a=10.0,
        b=90.0,
        spend_p=6.0,
        spend_q=16.0,
        spend_gamma=225.0,
        online_share=0.3,
        discount_affinity=0.08,
        favourites=("electronics", "garden", "home"),
        return_rate=0.08,
        open_rate=0.12,
        joined=(0.0, 0.4),
    ),
    Persona(
        "occasional",
        0.30,
        r=16.0,
        alpha=412.0,
        a=1.0,
        b=20.0,
        spend_p=6.0,
        spend_q=16.0,
        spend_gamma=62.0,
        online_share=0.5,
        discount_affinity=0.3,
        favourites=("books", "toys", "garden"),
        return_rate=0.04,
        open_rate=0.08,
        joined=(0.0, 0.8),
    ),
)

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
REGIONS = ("north", "south", "east", "west", "capital")
INCOME_BANDS = ("low", "middle", "high")
GENDERS = ("female", "male")


def draw_people(
    n: int,
    rng: np.random.Generator,
    *,
    personas: tuple[Persona, ...] = PERSONAS,
    history_weeks: float = 104.0,
    protected_effect: float = 0.0,
) -> pd.DataFrame:
    """Draw ``n`` people with their persona, demographics, first purchase and parameters.

    ``first_week`` is the week (from the start of history) of the first purchase, uniform
    over the part of the history the persona joins in (``Persona.joined``). ``protected_effect`` scales buying rates of one gender up and the
    other down (0 by default: behaviour independent of the protected attribute).
    """
    shares = np.array([p.share for p in personas], dtype=float)
    which = rng.choice(len(personas), size=n, p=shares / shares.sum())
    pick = {
        f: np.array([getattr(p, f) for p in personas])[which]
        for f in ("r", "alpha", "a", "b", "spend_p", "spend_q", "spend_gamma")
    }
    gender = rng.integers(0, len(GENDERS), size=n)
    lam = rng.gamma(pick["r"], 1.0 / pick["alpha"])
    lam = lam * np.exp(protected_effect * np.where(gender == 0, 1.0, -1.0))
    p = rng.beta(pick["a"], pick["b"])
    nu = rng.gamma(pick["spend_q"], 1.0 / pick["spend_gamma"])
    # Behavioural shares vary around the persona's value: Beta with mean m and
    # BEHAVIOUR_CONCENTRATION, so members of one persona are alike but not identical.
    shares_of = {
        f: np.array([getattr(q, f) for q in personas])[which]
        for f in ("online_share", "discount_affinity", "return_rate", "open_rate")
    }
    k = BEHAVIOUR_CONCENTRATION
    drawn = {f: rng.beta(k * m, k * (1 - m)) for f, m in shares_of.items()}
    joined = np.array([q.joined for q in personas])[which]
    return pd.DataFrame(
        {
            "person_id": np.arange(n, dtype=np.int64),
            "persona": np.array([q.name for q in personas])[which],
            "age_band": np.array(AGE_BANDS)[rng.integers(0, len(AGE_BANDS), size=n)],
            "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), size=n)],
            "income_band": np.array(INCOME_BANDS)[rng.integers(0, len(INCOME_BANDS), size=n)],
            "gender": np.array(GENDERS)[gender],
            "first_week": history_weeks * rng.uniform(joined[:, 0], joined[:, 1]),
            "lam": lam,
            "p": p,
            "spend_p": pick["spend_p"],
            "nu": nu,
            **drawn,
        }
    )
