"""Channel credit for conversions, over aggregated unique paths.

A path is the ordered channels of one journey's touches before it converted or ended
(``"search>email>direct"``); journeys with the same path are counted together, so a
million journeys become a few thousand rows and every method here costs little.

- **Rules**: first touch, last touch, linear, position-based (40 % to the first, 40 % to
  the last, the rest shared by those between) and time decay (each touch's weight halves
  every ``half_life`` touches back from the conversion: paths keep order, not clock time).
- **Markov** (first order): the journeys as an absorbing chain over start, the channels,
  conversion and null. The conversion probability from start is solved exactly from the
  transition matrix (``(I - Q)^-1 R``); a channel's removal effect is the share of that
  probability lost when every step into it leads to null instead. Credit is the
  conversions shared in proportion to the removal effects.
- **Shapley over channel sets**: the value of a set S of channels is the conversion rate of
  the journeys that used only channels in S; each channel gets its Shapley value of that
  game, exact over all 2^n sets (n up to ``exact_limit``), sampled permutations beyond.

None of these is causal: a channel people use on their way to buy anyway (typing the
address, searching the brand) gets credit it did not earn. They are the field's standard
methods, kept as the baseline a calibrated attribution is judged against.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

RULES = ("first", "last", "linear", "position", "time_decay")
SEPARATOR = ">"


def _touches(paths: pd.DataFrame) -> pd.DataFrame:
    """One row per touch of each converting path: path row, channel, position, length."""
    conv = paths[paths.conversions > 0]
    split = conv.path.str.split(SEPARATOR)
    lengths = split.str.len().to_numpy()
    rows = np.repeat(np.arange(len(conv)), lengths)
    position = np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else []
    return pd.DataFrame(
        {
            "row": rows,
            "channel": np.concatenate(split.to_numpy()) if len(split) else [],
            "position": np.asarray(position, dtype=np.int64),
            "length": np.repeat(lengths, lengths),
            "conversions": np.repeat(conv.conversions.to_numpy(float), lengths),
        }
    )


def rule_based(paths: pd.DataFrame, rule: str, *, half_life: float = 2.0) -> pd.Series:
    """Conversions credited to each channel by a rule (sums to the conversions)."""
    t = _touches(paths)
    pos, n = t.position.to_numpy(), t.length.to_numpy()
    if rule == "first":
        w = (pos == 0).astype(float)
    elif rule == "last":
        w = (pos == n - 1).astype(float)
    elif rule == "linear":
        w = 1.0 / n
    elif rule == "position":
        middle = np.where(n > 2, 0.2 / np.maximum(n - 2, 1), 0.0)
        ends = np.where(n == 1, 1.0, np.where(n == 2, 0.5, 0.4))
        w = np.where((pos == 0) | (pos == n - 1), ends, middle)
    elif rule == "time_decay":
        raw = np.power(2.0, -(n - 1 - pos) / half_life)
        total = pd.Series(raw).groupby(t.row.to_numpy()).transform("sum").to_numpy()
        w = raw / total
    else:
        raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    credit = pd.Series(w * t.conversions.to_numpy()).groupby(t.channel.to_numpy()).sum()
    return credit.sort_index()


def _absorbing(paths: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Transition counts of the first-order chain: states start, channels..., conv, null."""
    split = paths.path.str.split(SEPARATOR)
    channels = sorted({c for p in split for c in p})
    index = {c: i + 1 for i, c in enumerate(channels)}
    k = len(channels) + 3
    conv_s, null_s = k - 2, k - 1
    counts = np.zeros((k, k))
    conv = paths.conversions.to_numpy(float)
    null = paths.nulls.to_numpy(float)
    for steps, c, nl in zip(split, conv, null, strict=True):
        total = c + nl
        states = [0, *(index[s] for s in steps)]
        for a, b in itertools.pairwise(states):
            counts[a, b] += total
        counts[states[-1], conv_s] += c
        counts[states[-1], null_s] += nl
    return channels, counts


def _conversion_probability(counts: np.ndarray, removed: int | None = None) -> float:
    k = counts.shape[0]
    conv_s, null_s = k - 2, k - 1
    c = counts.copy()
    if removed is not None:  # every step into the removed channel ends the journey
        c[:, null_s] += c[:, removed]
        c[:, removed] = 0.0
        c[removed, :] = 0.0
    rows = c.sum(axis=1, keepdims=True)
    p = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0)
    transient = list(range(conv_s))
    q = p[np.ix_(transient, transient)]
    r = p[transient, conv_s]
    # Absorption into conversion from every transient state: (I - Q) b = r.
    b = np.linalg.solve(np.eye(len(transient)) - q + 1e-12 * np.eye(len(transient)), r)
    return float(b[0])


def markov(paths: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Conversions credited by removal effects, and the removal effects themselves."""
    channels, counts = _absorbing(paths)
    base = _conversion_probability(counts)
    effects = {
        ch: 1.0 - _conversion_probability(counts, removed=i + 1) / base if base > 0 else 0.0
        for i, ch in enumerate(channels)
    }
    re = pd.Series(effects).sort_index()
    total = float(paths.conversions.sum())
    share = re / re.sum() if re.sum() > 0 else re * 0
    return share * total, re


def _masks(paths: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    split = paths.path.str.split(SEPARATOR)
    channels = sorted({c for p in split for c in p})
    bit = {c: 1 << i for i, c in enumerate(channels)}
    masks = np.array([sum(bit[c] for c in set(p)) for p in split], dtype=np.int64)
    return channels, masks, paths.conversions.to_numpy(float), paths.nulls.to_numpy(float)


def shapley(
    paths: pd.DataFrame, *, exact_limit: int = 12, samples: int = 2000, seed: int = 0
) -> pd.Series:
    """Conversions credited by the Shapley values of v(S) = the conversion rate of the
    journeys that used only channels in S (0 for the empty set), scaled to the
    conversions."""
    channels, masks, conv, null = _masks(paths)
    n = len(channels)
    total = float(conv.sum())
    if n == 0:
        return pd.Series(dtype=float)
    if n <= exact_limit:
        size = 1 << n
        c_exact = np.bincount(masks, weights=conv, minlength=size)
        a_exact = np.bincount(masks, weights=conv + null, minlength=size)
        for i in range(n):  # sums over subsets (the zeta transform)
            has = (np.arange(size) >> i) & 1 == 1
            c_exact[has] += c_exact[np.arange(size)[has] ^ (1 << i)]
            a_exact[has] += a_exact[np.arange(size)[has] ^ (1 << i)]
        v = np.divide(c_exact, a_exact, out=np.zeros(size), where=a_exact > 0)
        sizes = np.array([bin(s).count("1") for s in range(size)])
        weight = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                           for k in range(n)])  # fmt: skip
        phi = np.zeros(n)
        for i in range(n):
            without = np.flatnonzero((np.arange(size) >> i) & 1 == 0)
            phi[i] = np.sum(weight[sizes[without]] * (v[without | (1 << i)] - v[without]))
    else:
        rng = np.random.default_rng(seed)
        order_all = np.argsort(masks)
        sorted_masks = masks[order_all]
        phi = np.zeros(n)

        def value(s: int) -> float:
            inside = (sorted_masks & ~s) == 0
            a = (conv + null)[order_all][inside].sum()
            return float(conv[order_all][inside].sum() / a) if a > 0 else 0.0

        for _ in range(samples):
            s, prev = 0, 0.0
            for i in rng.permutation(n):
                s |= 1 << int(i)
                now = value(s)
                phi[i] += now - prev
                prev = now
        phi /= samples
    share = phi / phi.sum() if phi.sum() > 0 else phi * 0
    return pd.Series(share * total, index=channels).sort_index()


def shares(credit: pd.Series) -> pd.Series:
    """Credit as shares of the total."""
    total = credit.sum()
    return credit / total if total else credit * 0


BASE_CHANNELS = ("direct", "organic")


def _subset_values(alpha: float, beta: np.ndarray) -> np.ndarray:
    """f(T) = P(convert | touched by exactly T) - P(convert | untouched), every set T."""
    n = beta.size
    size = 1 << n
    bits = (np.arange(size)[:, None] >> np.arange(n)) & 1
    logit = alpha + bits @ beta
    return 1 / (1 + np.exp(-logit)) - 1 / (1 + np.exp(-alpha))


def model_shapley(paths: pd.DataFrame, *, exact_limit: int = 12) -> tuple[pd.DataFrame, pd.Series]:
    """Expected incremental conversions per path and channel under a fitted conversion
    model, split by exact Shapley values; and the model's coefficients.

    The model is a logistic regression of conversion on which channels a journey used
    (fitted on the unique channel sets, weighted by their journeys). Each journey's
    predicted lift over an untouched journey is split among its channels by their
    Shapley values of that prediction, so credit follows the model's interactions.
    Returns one row per unique channel set: ``mask`` and a column per channel holding
    the credit for all journeys with that set (``journeys`` of them).
    """
    import statsmodels.api as sm

    channels, masks, conv, null = _masks(paths)
    n = len(channels)
    if n > exact_limit:
        raise ValueError(f"{n} channels: exact Shapley of the model is limited to {exact_limit}")
    groups = pd.DataFrame({"mask": masks, "c": conv, "n": null}).groupby("mask").sum()
    m = groups.index.to_numpy()
    x = ((m[:, None] >> np.arange(n)) & 1).astype(float)
    y = groups[["c", "n"]].to_numpy()
    fit = sm.GLM(y, sm.add_constant(x, has_constant="add"), family=sm.families.Binomial())
    params = fit.fit().params
    alpha, beta = float(params[0]), np.asarray(params[1:], dtype=float)
    f = _subset_values(alpha, beta)
    size = 1 << n
    pop = np.array([bin(s).count("1") for s in range(size)])
    everything = np.arange(size)
    journeys = (groups.c + groups.n).to_numpy()
    credit = np.zeros((len(m), n))
    for r, mask in enumerate(m):
        k = int(pop[mask])
        subs = everything[(everything & ~mask) == 0]
        weight = np.array([math.factorial(t) * math.factorial(k - t - 1) / math.factorial(k)
                           for t in range(k)])  # fmt: skip
        for i in range(n):
            if not mask >> i & 1:
                continue
            without = subs[(subs >> i) & 1 == 0]
            credit[r, i] = np.sum(weight[pop[without]] * (f[without | (1 << i)] - f[without]))
    table = pd.DataFrame(credit * journeys[:, None], columns=channels)
    table.insert(0, "journeys", journeys)
    table.insert(0, "mask", m)
    return table, pd.Series(params, index=["intercept", *channels])


def experiment_lift(experiments: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Each channel's measured lift: the conversion rate of those it reached minus that of
    those held out, with a normal-approximation interval."""
    from scipy.stats import norm

    e = experiments.copy()
    pt = e.treated_conversions / e.treated
    pc = e.control_conversions / e.control
    se = np.sqrt(pt * (1 - pt) / e.treated + pc * (1 - pc) / e.control)
    z = float(norm.ppf(0.5 + level / 2))
    e["lift"] = pt - pc
    e["lift_low"], e["lift_high"] = e.lift - z * se, e.lift + z * se
    return e.set_index("channel")


def calibrated(
    paths: pd.DataFrame,
    experiments: pd.DataFrame | None = None,
    *,
    base: tuple[str, ...] = BASE_CHANNELS,
    level: float = 0.95,
    reach: pd.Series | None = None,
) -> pd.DataFrame:
    """Channel credit in incremental conversions, calibrated to holdout experiments.

    The fitted model's Shapley credit says how each channel's effect spreads over the
    paths. Where a channel has a randomized holdout, its total is set to what the
    experiment measured: the lift per person reached times the people it touched
    (``reach``; the journeys it touched when not given), a lift estimated below zero
    giving no credit. ``base`` channels (by default
    direct and organic: a visit people make on their own, which no holdout can switch
    off) get none; their conversions count as baseline. Any other channel keeps the
    model's credit and is marked uncalibrated. One row per channel with the model's
    credit, the measured lift and interval, the calibrated credit and its interval.
    """
    table, _ = model_shapley(paths)
    channels = [c for c in table.columns if c not in ("mask", "journeys")]
    lift = (
        experiment_lift(experiments, level)
        if experiments is not None and len(experiments)
        else None
    )
    rows = []
    for i, ch in enumerate(channels):
        journeys = float(table.journeys[(table["mask"].to_numpy() >> i) & 1 == 1].sum())
        touched = float(reach.get(ch, journeys)) if reach is not None else journeys
        model = float(table[ch].sum())
        row = {"channel": ch, "journeys": journeys, "people": touched, "model_credit": model}
        row["base"] = ch in base
        if lift is not None and ch in lift.index and ch not in base:
            e = lift.loc[ch]
            row |= {"lift": e.lift, "lift_low": e.lift_low, "lift_high": e.lift_high}
            row |= {
                "credit": max(e.lift, 0.0) * touched,
                "credit_low": max(e.lift_low, 0.0) * touched,
                "credit_high": max(e.lift_high, 0.0) * touched,
                "calibrated": True,
            }
        elif ch in base:
            row |= {"credit": 0.0, "credit_low": 0.0, "credit_high": 0.0, "calibrated": False}
        else:
            # A model that finds a channel lowers conversion credits it nothing.
            row |= {"credit": max(model, 0.0), "credit_low": np.nan, "credit_high": np.nan}
            row["calibrated"] = False
        rows.append(row)
    out = pd.DataFrame(rows).set_index("channel")
    for col in ("lift", "lift_low", "lift_high"):
        if col not in out:
            out[col] = np.nan
    out["model_lift"] = out.model_credit / out.people.where(out.people > 0)
    out["share"] = shares(out.credit)
    return out
