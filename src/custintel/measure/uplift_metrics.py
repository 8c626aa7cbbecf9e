"""How good an uplift ranking is, judged on randomized data it did not learn from.

- **Qini curve**: customers sorted by predicted uplift, best first; at each cut the
  incremental outcomes of treating that many, ``Y_t(k) - Y_c(k) * N_t(k) / N_c(k)``, where
  ``Y_t(k)`` sums the treated's outcomes among the first k and ``N_t(k)`` counts them
  (Radcliffe 2007). A random ranking gives the straight line to the total; **AUUC** here
  is the area between the curve and that line, over the customers, as a share of the
  population (0 = no better than random).
- **Uplift by decile**: treated minus control mean outcome within each tenth of the
  ranking; a good model's deciles fall from left to right.
- **Policy value** of "treat the top k %": the mean outcome per customer if exactly those
  were treated and the others not, estimated by inverse propensity weighting on
  randomized data, ``mean(y * 1[w = pi(x)] / P(w = pi(x)))`` with the known assignment
  probability; reported as the gain over treating no one.

All are pure numpy; ties in the score are broken by a fixed order so results repeat.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _order(score: np.ndarray) -> np.ndarray:
    """Best first; ties in a stable order."""
    return np.argsort(-np.asarray(score, dtype="float64"), kind="stable")


def qini_curve(
    score: np.ndarray, treated: np.ndarray, y: np.ndarray, points: int = 101
) -> pd.DataFrame:
    """The Qini curve at ``points`` evenly spaced shares of the population (0 to 1):
    ``share``, ``incremental`` (outcomes gained, in outcome units) and ``random`` (the
    line a random ranking gives)."""
    o = _order(score)
    t = np.asarray(treated, dtype=bool)[o]
    yy = np.asarray(y, dtype="float64")[o]
    n = len(yy)
    yt, yc = np.cumsum(yy * t), np.cumsum(yy * ~t)
    nt, nc = np.cumsum(t), np.cumsum(~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        inc = yt - np.where(nc > 0, yc * nt / nc, 0.0)
    inc = np.concatenate([[0.0], inc])
    idx = np.round(np.linspace(0, n, points)).astype(int)
    total = inc[-1]
    share = idx / n
    return pd.DataFrame({"share": share, "incremental": inc[idx], "random": share * total})


def auuc(score: np.ndarray, treated: np.ndarray, y: np.ndarray) -> float:
    """Area between the Qini curve and the random line, per customer (the trapezoid rule
    over shares of the population)."""
    c = qini_curve(score, treated, y, points=201)
    gap = (c.incremental - c.random).to_numpy() / len(np.asarray(y))
    return float(np.trapezoid(gap, c.share.to_numpy()))


def uplift_by_decile(score: np.ndarray, treated: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Treated minus control mean outcome in each tenth of the ranking (1 = the highest
    predicted uplift), with the mean predicted uplift there."""
    o = _order(score)
    n = len(o)
    decile = np.empty(n, dtype=int)
    decile[o] = np.minimum(np.arange(n) * 10 // n, 9) + 1
    f = pd.DataFrame({"decile": decile, "t": np.asarray(treated, bool), "y": y, "s": score})
    rows = []
    for d, g in f.groupby("decile"):
        yt, yc = g.y[g.t], g.y[~g.t]
        rows.append(
            {
                "decile": int(d),
                "customers": len(g),
                "predicted": float(g.s.mean()),
                "observed": float(yt.mean() - yc.mean()) if len(yt) and len(yc) else np.nan,
                "treated": int(g.t.sum()),
                "control": int((~g.t).sum()),
            }
        )
    return pd.DataFrame(rows)


def policy_value(
    score: np.ndarray, treated: np.ndarray, y: np.ndarray, p: np.ndarray | float, top: float
) -> float:
    """Mean outcome gained per customer, against treating no one, by treating the ``top``
    share ranked by ``score``: inverse propensity weighting with the known probability
    ``p`` of being treated (a number, or one per customer)."""
    if not 0 <= top <= 1:
        raise ValueError(f"top must be a share between 0 and 1, not {top}")
    n = len(score)
    w = np.asarray(treated, dtype=bool)
    yy = np.asarray(y, dtype="float64")
    pp = np.broadcast_to(np.asarray(p, dtype="float64"), (n,))
    pick = np.zeros(n, dtype=bool)
    pick[_order(score)[: round(top * n)]] = True
    # E[Y(pi)] - E[Y(0)] = E[(Y(1) - Y(0)) 1[pi]], estimated from the randomized arms.
    gain = np.where(w, yy / pp, -yy / (1 - pp))
    return float(np.mean(gain * pick))


def true_policy_value(score: np.ndarray, effect: np.ndarray, top: float) -> float:
    """The same with every customer's true effect known (simulations only)."""
    n = len(score)
    pick = _order(score)[: round(top * n)]
    return float(np.asarray(effect, dtype="float64")[pick].sum() / n)
