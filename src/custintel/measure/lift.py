"""Incremental lift of treated arms against one randomized control group.

The input is one row per customer with the arm they were randomized to, their outcomes
in the window after the send and (for CUPED) the same outcomes in a pre-period. The
output is one row per metric, arm and adjustment: the absolute lift with its interval and
p-value, the relative lift with its interval, and the p-value corrected for several arms.

- Proportions (converted or not) use the normal approximation for a difference of two
  rates; means (orders, visits, revenue) use Welch's interval, or a BCa bootstrap when
  asked, since revenue per customer is mostly zeros and a long tail.
- CUPED (Deng et al. 2013) subtracts ``theta * (x - mean x)`` from each outcome, with
  ``theta = cov(y, x) / var(x)`` over both groups pooled. The pre-period cannot be moved by
  the treatment, so the estimate stays unbiased and its variance shrinks by the squared
  correlation. Both rows are reported, so the reduction can be seen.
- Several arms against one control are a family: Holm's correction (statsmodels) keeps
  the chance of any false "significant" at the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from custintel.stats import difference_of_means, difference_of_proportions

KINDS = ("proportion", "mean")


@dataclass(frozen=True)
class Metric:
    """One outcome column: ``kind`` is ``proportion`` (0/1) or ``mean``; ``covariate`` names
    its pre-period column for CUPED (None: no adjusted row)."""

    name: str
    kind: str = "mean"
    covariate: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"metric {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}"
            )


def cuped(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The CUPED-adjusted outcome, ``theta`` and the share of variance removed."""
    y, x = np.asarray(y, dtype="float64"), np.asarray(x, dtype="float64")
    vx = float(x.var())
    if vx == 0 or len(y) < 2:
        return y.copy(), 0.0, 0.0
    theta = float(np.cov(y, x, ddof=0)[0, 1] / vx)
    adjusted = y - theta * (x - x.mean())
    vy = float(y.var())
    reduction = 1 - float(adjusted.var()) / vy if vy > 0 else 0.0
    return adjusted, theta, reduction


def _relative(
    mt: float, mc: float, vt: float, vc: float, nt: int, nc: int, z: float
) -> tuple[float, float, float]:
    """Treated mean over control mean minus one, with a delta-method interval."""
    if mc == 0:
        return np.nan, np.nan, np.nan
    rel = mt / mc - 1
    se = np.sqrt(vt / nt / mc**2 + mt**2 * vc / nc / mc**4)
    return float(rel), float(rel - z * se), float(rel + z * se)


def _bootstrap_difference(
    t: np.ndarray, c: np.ndarray, level: float, rounds: int, seed: int
) -> tuple[float, float]:
    """BCa interval of mean(t) - mean(c), each group resampled on its own (scipy)."""
    res = st.bootstrap(
        (t, c),
        lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        vectorized=True,
        paired=False,
        n_resamples=rounds,
        confidence_level=level,
        method="BCa",
        batch=max(1, min(rounds, 50_000_000 // max(1, len(t) + len(c)))),
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare(
    t: np.ndarray,
    c: np.ndarray,
    kind: str,
    *,
    level: float = 0.95,
    bootstrap_rounds: int = 0,
    seed: int = 0,
) -> dict[str, float | str]:
    """Treated against control on one outcome: lift, interval, p-value, relative lift."""
    t, c = np.asarray(t, dtype="float64"), np.asarray(c, dtype="float64")
    nt, nc = len(t), len(c)
    z = float(st.norm.ppf(0.5 + level / 2))
    if kind == "proportion":
        iv = difference_of_proportions(
            round(float(t.sum())), nt, round(float(c.sum())), nc, level=level
        )
        method = "normal"
    else:
        iv = difference_of_means(t, c, level=level)
        method = "welch"
    low, high = iv.low, iv.high
    if bootstrap_rounds and kind == "mean":
        low, high = _bootstrap_difference(t, c, level, bootstrap_rounds, seed)
        method = "bootstrap"
    rel, rel_low, rel_high = _relative(
        float(t.mean()), float(c.mean()), float(t.var(ddof=1)), float(c.var(ddof=1)), nt, nc, z
    )
    return {
        "mean_treated": float(t.mean()),
        "mean_control": float(c.mean()),
        "lift": iv.estimate,
        "low": low,
        "high": high,
        "p_value": float(iv.p_value) if iv.p_value is not None else np.nan,
        "relative_lift": rel,
        "relative_low": rel_low,
        "relative_high": rel_high,
        "method": method,
    }


def lift_table(
    frame: pd.DataFrame,
    metrics: list[Metric],
    *,
    arm: str = "arm",
    control: str = "control",
    level: float = 0.95,
    bootstrap_rounds: int = 0,
    correction: str = "holm",
    seed: int = 0,
) -> pd.DataFrame:
    """Every treated arm of ``frame[arm]`` against ``control``, per metric (and per CUPED
    adjustment where the metric names a covariate)."""
    from statsmodels.stats.multitest import multipletests

    arms = frame[arm].astype(str)
    if control not in set(arms):
        raise ValueError(f"no control group: no row has {arm} = {control!r}")
    treated_arms = sorted(a for a in arms.unique() if a != control)
    is_c = (arms == control).to_numpy()
    rows = []
    for m in metrics:
        y = frame[m.name].to_numpy(dtype="float64")
        for adjusted in (False, True) if m.covariate is not None else (False,):
            family = []
            for a in treated_arms:
                is_t = (arms == a).to_numpy()
                t, c = y[is_t], y[is_c]
                theta = reduction = np.nan
                if adjusted:
                    x = frame[m.covariate].to_numpy(dtype="float64")
                    both = is_t | is_c
                    adj, theta, reduction = cuped(y[both], x[both])
                    t, c = adj[is_t[both]], adj[is_c[both]]
                kind = "mean" if adjusted else m.kind
                out = compare(t, c, kind, level=level, bootstrap_rounds=bootstrap_rounds, seed=seed)
                if adjusted:  # the adjusted means keep the raw ones' meaning
                    out["mean_treated"] = float(y[is_t].mean())
                    out["mean_control"] = float(y[is_c].mean())
                    out["relative_lift"], out["relative_low"], out["relative_high"] = (
                        _relative_from(out, y[is_c].mean())
                    )
                family.append(
                    {
                        "metric": m.name,
                        "kind": m.kind,
                        "arm": a,
                        "cuped": adjusted,
                        "n_treated": int(is_t.sum()),
                        "n_control": int(is_c.sum()),
                        **out,
                        "theta": theta,
                        "variance_reduction": reduction,
                    }
                )
            p = np.array([f["p_value"] for f in family], dtype="float64")
            ok = np.isfinite(p)
            adjusted_p = p.copy()
            if ok.sum() > 1:  # one arm is no family (and statsmodels runs a gc pass)
                adjusted_p[ok] = multipletests(p[ok], method=correction)[1]
            for f, q in zip(family, adjusted_p, strict=True):
                f["p_adjusted"] = float(q)
                f["correction"] = correction if len(family) > 1 else "none"
            rows.extend(family)
    return pd.DataFrame(rows)


def _relative_from(out: dict[str, float | str], mc: float) -> tuple[float, float, float]:
    """Relative lift from an adjusted absolute lift: its interval over the control mean
    (the control mean's own noise is small beside the lift's; CUPED is about the lift)."""
    if mc == 0:
        return np.nan, np.nan, np.nan
    return (
        float(out["lift"]) / mc,  # type: ignore[arg-type]
        float(out["low"]) / mc,  # type: ignore[arg-type]
        float(out["high"]) / mc,  # type: ignore[arg-type]
    )


def sample_ratio(counts: dict[str, int], expected: dict[str, float]) -> dict[str, float | bool]:
    """Sample-ratio-mismatch check: a chi-square test of the arms' sizes against the designed
    shares. A p-value under 0.001 means the split is broken (a bug in assignment or in
    logging), and no lift should be claimed until it is explained."""
    names = sorted(expected)
    observed = np.array([counts.get(n, 0) for n in names], dtype="float64")
    shares = np.array([expected[n] for n in names], dtype="float64")
    shares = shares / shares.sum()
    total = observed.sum()
    if total == 0:
        return {"chi2": np.nan, "p_value": np.nan, "mismatch": False}
    chi2, p = st.chisquare(observed, total * shares)
    return {"chi2": float(chi2), "p_value": float(p), "mismatch": bool(p < 0.001)}


def balance(
    frame: pd.DataFrame, covariates: list[str], *, arm: str = "arm", control: str = "control"
) -> pd.DataFrame:
    """Pre-period balance of each arm against control: the standardized mean difference
    and Welch's p-value per covariate. Randomized arms differ only by chance, so a p-value
    under 0.001 flags an assignment that was not random (or a leak of the outcome into
    the pre-period)."""
    arms = frame[arm].astype(str)
    rows = []
    for a in sorted(x for x in arms.unique() if x != control):
        for cov in covariates:
            t = frame.loc[arms == a, cov].to_numpy(dtype="float64")
            c = frame.loc[arms == control, cov].to_numpy(dtype="float64")
            sd = np.sqrt((t.var(ddof=1) + c.var(ddof=1)) / 2) if min(len(t), len(c)) > 1 else 0
            smd = (t.mean() - c.mean()) / sd if sd > 0 else 0.0
            p = float(st.ttest_ind(t, c, equal_var=False).pvalue) if sd > 0 else 1.0
            rows.append(
                {"arm": a, "covariate": cov, "smd": float(smd), "p_value": p, "flagged": p < 0.001}
            )
    return pd.DataFrame(rows, columns=["arm", "covariate", "smd", "p_value", "flagged"])
