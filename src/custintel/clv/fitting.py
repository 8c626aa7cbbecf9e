"""Maximum likelihood for the buy-till-you-die models, done once for every customer alike.

Customers with the same (frequency, recency, age) contribute the same likelihood term, so
the data are compressed to their distinct rows with a count each before fitting: a
million customers observed in whole days collapse to far fewer rows, and every
likelihood evaluation gets that much cheaper. Parameters are fitted on the log scale (so
they stay positive) with L-BFGS-B from scipy; standard errors come from a numerical
Hessian of the negative log-likelihood at the optimum, on the natural scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize


@dataclass
class Compressed:
    """Distinct rows of the data and how many customers each stands for."""

    columns: tuple[np.ndarray, ...]
    weights: np.ndarray


def compress(*columns: np.ndarray) -> Compressed:
    """Distinct rows by hashing (pandas); numpy's row-wise unique sorts and is five
    times slower at a million rows."""
    frame = pd.DataFrame({i: np.asarray(c, dtype=np.float64) for i, c in enumerate(columns)})
    counts = frame.groupby(list(frame.columns), sort=False).size()
    keys = counts.index.to_frame(index=False)
    return Compressed(
        tuple(keys[i].to_numpy(np.float64) for i in range(len(columns))),
        counts.to_numpy(np.float64),
    )


@dataclass
class Indexed:
    """A column as its distinct values and, per row, which one: functions of a single
    column (log-gamma of r + x, log of alpha + T) are computed once per distinct value."""

    values: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, column: np.ndarray) -> Indexed:
        index, values = pd.factorize(column, sort=False)  # hashing: no sort
        return cls(np.asarray(values, dtype=np.float64), index)


@dataclass
class Fit:
    params: np.ndarray
    log_likelihood: float
    standard_errors: np.ndarray
    iterations: int
    converged: bool
    message: str


def hessian(f: Callable[[np.ndarray], float], x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian; written here because four parameters do not justify a
    numerical-differentiation dependency."""
    n = len(x)
    h = rel * np.maximum(np.abs(x), 1e-3)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.zeros(n), np.zeros(n)
            ei[i], ej[j] = h[i], h[j]
            value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * h[i] * h[j]
            )
            out[i, j] = out[j, i] = value
    return out


def hessian_from_gradient(
    g: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rel: float = 1e-5
) -> np.ndarray:
    """Forward differences of an analytic gradient: n + 1 gradient calls instead of 4n²
    likelihood calls."""
    n = len(x)
    h = rel * np.maximum(np.abs(x), 1e-3)
    out = np.empty((n, n))
    at = g(x)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h[i]
        out[i] = (g(x + e) - at) / h[i]  # forward: ample for standard errors
    return (out + out.T) / 2


def maximise(
    negative_ll: Callable[[np.ndarray], float],
    start: np.ndarray,
    *,
    gradient: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    tolerance: float = 1e-10,
    max_iterations: int = 2000,
    errors: bool = True,
) -> Fit:
    """Minimise ``negative_ll(params)`` over positive parameters; ``gradient``, when
    given, returns the value and its gradient in the parameters (about five times fewer
    likelihood evaluations than differences)."""

    def on_log(z: np.ndarray) -> float:
        value = negative_ll(np.exp(z))
        return value if np.isfinite(value) else 1e300

    def on_log_with_gradient(z: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(z)
        value, grad = gradient(params)  # type: ignore[misc]
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros_like(z)
        return value, grad * params  # chain rule to the log scale

    result = minimize(
        on_log if gradient is None else on_log_with_gradient,
        np.log(start),
        jac=gradient is not None,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "ftol": tolerance, "gtol": 1e-8},
    )
    params = np.exp(result.x)
    if not errors:
        return Fit(
            params,
            -float(result.fun),
            np.full(len(params), np.nan),
            int(result.nit),
            bool(result.success),
            str(result.message),
        )
    try:
        if gradient is None:
            curvature = hessian(negative_ll, params)
        else:
            curvature = hessian_from_gradient(lambda z: gradient(z)[1], params)
        covariance = np.linalg.inv(curvature)
        errors = np.sqrt(np.clip(np.diag(covariance), 0, None))
    except np.linalg.LinAlgError:
        errors = np.full(len(params), np.nan)
    return Fit(
        params=params,
        log_likelihood=-float(result.fun),
        standard_errors=errors,
        iterations=int(result.nit),
        converged=bool(result.success),
        message=str(result.message),
    )
