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
from scipy.optimize import minimize


@dataclass
class Compressed:
    """Distinct rows of the data and how many customers each stands for."""

    columns: tuple[np.ndarray, ...]
    weights: np.ndarray


def compress(*columns: np.ndarray) -> Compressed:
    stacked = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return Compressed(tuple(unique[:, i] for i in range(unique.shape[1])), counts.astype(float))


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


def maximise(
    negative_ll: Callable[[np.ndarray], float],
    start: np.ndarray,
    *,
    tolerance: float = 1e-10,
    max_iterations: int = 2000,
) -> Fit:
    """Minimise ``negative_ll(params)`` over positive parameters."""

    def on_log(z: np.ndarray) -> float:
        value = negative_ll(np.exp(z))
        return value if np.isfinite(value) else 1e300

    result = minimize(
        on_log,
        np.log(start),
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "ftol": tolerance, "gtol": 1e-8},
    )
    params = np.exp(result.x)
    try:
        covariance = np.linalg.inv(hessian(negative_ll, params))
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
