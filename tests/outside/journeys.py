"""Web-analytics sessions written apart from custintel's simulator, with a causal truth of
another shape: for attribution's tests on data custintel did not make.

People buy repeatedly over a quarter at a Poisson rate that each channel *multiplies*
(not adds to), so channels interact; the purchase session itself most often arrives by
the typed address. Channel names and utm spellings are this exporter's own (``bing`` /
``CPC``, ``tiktok`` / ``paid-social``, ``spotify`` / ``audio``, ``Email``, ``banner``).
Two of the five marketing channels do nothing (audio, banner); direct visits do nothing
either but follow intent. Every marketing channel keeps a 20 % randomized holdout whose
counts are reported as a lift study reports them: people reached and their purchases.

The truth of each channel's share: for every person, the expected purchases the
channels caused (rate with their channels minus rate with none) is split among those
channels by exact Shapley values of the rate, then summed over people.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# name, utm_source, utm_medium, reach at average intent, intent slope, rate multiplier
MARKETING = (
    ("search", "bing", "CPC", 0.35, 0.9, 1.45),
    ("tiktok", "tiktok", "paid-social", 0.30, 0.1, 1.30),
    ("audio", "spotify", "audio", 0.25, 0.6, 1.00),
    ("newsletter", "crm", "Email", 0.30, 0.4, 1.25),
    ("banner", "network", "banner", 0.50, 0.5, 1.00),
)
MEDIUM_TO_CHANNEL = {"cpc": "search", "paid-social": "tiktok", "email": "newsletter",
                     "banner": "banner", "audio": "audio"}  # fmt: skip
HOLDOUT = 0.2
DAYS = 91


@dataclass
class OutsideJourneys:
    events: pd.DataFrame
    experiments: pd.DataFrame
    truth: pd.Series  # channel -> true share of the caused purchases
    purchases: int


def _shapley_of_product(base: float, mult: np.ndarray) -> np.ndarray:
    """Exact Shapley split of base * prod(mult) - base among the factors."""
    k = mult.size
    phi = np.zeros(k)
    for i in range(k):
        others = [j for j in range(k) if j != i]
        for size in range(k):
            w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for subset in itertools.combinations(others, size):
                v = base * np.prod(mult[list(subset)])
                phi[i] += w * (v * mult[i] - v)
    return phi


def generate(people: int = 60_000, seed: int = 0) -> OutsideJourneys:
    rng = np.random.default_rng(seed + 1000)
    z = rng.normal(size=people)
    base_rate = 0.06 * np.exp(0.7 * z)  # purchases per quarter without marketing
    k = len(MARKETING)
    reached = np.zeros((people, k), bool)
    exposed = np.zeros((people, k), bool)
    for c, (_, _, _, r, slope, _) in enumerate(MARKETING):
        reached[:, c] = rng.random(people) < 1 / (1 + np.exp(-(np.log(r / (1 - r)) + slope * z)))
        exposed[:, c] = reached[:, c] & (rng.random(people) >= HOLDOUT)
    mult = np.array([m[5] for m in MARKETING])
    rate = base_rate * np.prod(np.where(exposed, mult, 1.0), axis=1)
    n_buys = rng.poisson(rate)

    # Truth: Shapley split of each person's caused purchases, by exposure pattern.
    caused = np.zeros(k)
    codes = exposed @ (1 << np.arange(k))
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        on = [c for c in range(k) if code >> c & 1]
        if not on:
            continue
        phi = _shapley_of_product(1.0, mult[on])
        caused[on] += phi * base_rate[members].sum()
    truth = pd.Series(caused / caused.sum(), index=[m[0] for m in MARKETING])
    truth["direct"] = 0.0

    rows = []
    # Marketing touches: 1-3 per exposure, anywhere in the quarter.
    p_idx, c_idx = np.nonzero(exposed)
    reps = 1 + rng.binomial(2, 0.4, size=p_idx.size)
    p_idx, c_idx = np.repeat(p_idx, reps), np.repeat(c_idx, reps)
    rows.append(pd.DataFrame({"who": p_idx, "day": rng.uniform(0, DAYS, p_idx.size),
                              "chan": c_idx, "buy": False}))  # fmt: skip
    # Direct visits follow intent, whatever marketing did.
    n_direct = rng.poisson(0.4 * np.exp(0.8 * z))
    who = np.repeat(np.arange(people), n_direct)
    rows.append(pd.DataFrame({"who": who, "day": rng.uniform(0, DAYS, who.size),
                              "chan": -1, "buy": False}))  # fmt: skip
    # Purchases: a session of their own, typed in 60 % of the time, else by the channel
    # of one of the person's marketing exposures (or typed when there is none).
    who = np.repeat(np.arange(people), n_buys)
    chan = np.full(who.size, -1)
    for i in np.flatnonzero(rng.random(who.size) >= 0.6):
        options = np.flatnonzero(exposed[who[i]])
        if options.size:
            chan[i] = rng.choice(options)
    rows.append(pd.DataFrame({"who": who, "day": rng.uniform(0, DAYS, who.size),
                              "chan": chan, "buy": True}))  # fmt: skip
    s = pd.concat(rows, ignore_index=True).sort_values(["who", "day"], ignore_index=True)
    s["visit"] = np.arange(len(s))
    src = np.array([m[1] for m in MARKETING] + [None], dtype=object)
    med = np.array([m[2] for m in MARKETING] + [None], dtype=object)
    when = pd.Timestamp("2025-04-01") + pd.to_timedelta(s.day * 86400, unit="s").dt.round("s")
    views = pd.DataFrame(
        {
            "visitor": "c-" + s.who.astype(str),
            "visit": "v" + s.visit.astype(str),
            "hit_time": when,
            "hit": "page_view",
            "src": src[s.chan.to_numpy()],
            "med": med[s.chan.to_numpy()],
        }
    )
    buys = views[s.buy.to_numpy()].assign(
        hit="purchase", hit_time=lambda d: d.hit_time + pd.Timedelta(minutes=2)
    )
    events = pd.concat([views, buys], ignore_index=True)

    experiments = pd.DataFrame(
        [
            {
                "channel": name,
                "treated": int((reached[:, c] & exposed[:, c]).sum()),
                "treated_conversions": int(n_buys[reached[:, c] & exposed[:, c]].sum()),
                "control": int((reached[:, c] & ~exposed[:, c]).sum()),
                "control_conversions": int(n_buys[reached[:, c] & ~exposed[:, c]].sum()),
            }
            for c, (name, *_) in enumerate(MARKETING)
        ]
    )
    return OutsideJourneys(events, experiments, truth, int(n_buys.sum()))
