"""Planning a test: how many customers it needs, or what it can detect with those it has.

statsmodels solves the power equations; this module only turns a marketer's question (a
baseline rate and the lift hoped for, a holdout share) into its effect size and back:

- proportions use Cohen's h, ``2 asin(sqrt(p1)) - 2 asin(sqrt(p0))``, with the normal
  power of a two-sample test (``NormalIndPower``);
- means use Cohen's d, the lift over the outcome's standard deviation, with the t-test's
  power (``TTestIndPower``).

``control_share`` is the share of the audience held out: sizes come back for both groups,
and an unequal split needs more customers in all than an even one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes and the smallest detectable lift for one design."""

    n_treated: int
    n_control: int
    mde: float
    baseline: float
    power: float
    alpha: float
    kind: str

    @property
    def total(self) -> int:
        return self.n_treated + self.n_control

    def as_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "total": self.total}


def _check(power: float, alpha: float, control_share: float) -> None:
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, not {power}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if not 0 < control_share < 1:
        raise ValueError(f"the control share must be between 0 and 1, not {control_share}")


def sample_size(
    baseline: float,
    mde: float,
    *,
    kind: str = "proportion",
    sd: float | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
    control_share: float = 0.5,
) -> Plan:
    """Customers needed to detect an absolute lift of ``mde`` over ``baseline`` (a rate, or
    a mean whose standard deviation is ``sd``) with a two-sided test."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    _check(power, alpha, control_share)
    if mde == 0:
        raise ValueError("the minimum detectable effect must not be zero")
    ratio = control_share / (1 - control_share)  # control per treated
    if kind == "proportion":
        if not 0 < baseline < 1 or not 0 < baseline + mde < 1:
            raise ValueError(
                f"rates must lie between 0 and 1: baseline {baseline}, with the lift "
                f"{baseline + mde}"
            )
        effect = abs(proportion_effectsize(baseline + mde, baseline))
        n = NormalIndPower().solve_power(effect, alpha=alpha, power=power, ratio=ratio)
    elif kind == "mean":
        if not sd or sd <= 0:
            raise ValueError("a mean needs the outcome's standard deviation (sd > 0)")
        n = TTestIndPower().solve_power(abs(mde) / sd, alpha=alpha, power=power, ratio=ratio)
    else:
        raise ValueError(f"kind must be proportion or mean, not {kind!r}")
    n_t = math.ceil(float(n))
    return Plan(n_t, math.ceil(n_t * ratio), abs(mde), baseline, power, alpha, kind)


def detectable(
    baseline: float,
    n_treated: int,
    n_control: int,
    *,
    kind: str = "proportion",
    sd: float | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
) -> Plan:
    """The smallest absolute lift over ``baseline`` these group sizes detect."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower

    if min(n_treated, n_control) < 2:
        raise ValueError("both groups need at least two customers")
    _check(power, alpha, 0.5)
    ratio = n_control / n_treated
    if kind == "proportion":
        if not 0 < baseline < 1:
            raise ValueError(f"a baseline rate must lie between 0 and 1, not {baseline}")
        h = NormalIndPower().solve_power(
            None, nobs1=n_treated, alpha=alpha, power=power, ratio=ratio
        )
        top = 2 * math.asin(math.sqrt(baseline)) + float(h)
        lifted = math.sin(min(top, math.pi) / 2) ** 2
        mde = lifted - baseline
    elif kind == "mean":
        if not sd or sd <= 0:
            raise ValueError("a mean needs the outcome's standard deviation (sd > 0)")
        d = TTestIndPower().solve_power(
            None, nobs1=n_treated, alpha=alpha, power=power, ratio=ratio
        )
        mde = float(d) * sd
    else:
        raise ValueError(f"kind must be proportion or mean, not {kind!r}")
    return Plan(n_treated, n_control, float(mde), baseline, power, alpha, kind)
