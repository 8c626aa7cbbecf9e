"""Buy-till-you-die models of repeat purchasing and a model of spend per purchase.

Each model takes, per customer, ``frequency`` (repeat purchases: purchase days after the
first), ``recency`` (time from the first to the last purchase) and ``T`` (time from the
first purchase to the end of the observation), in one time unit (weeks in the papers).

- :class:`BetaGeo` (BG/NBD; Fader, Hardie and Lee 2005): purchases at a Gamma(r, alpha)
  distributed Poisson rate while alive; after each repeat purchase the customer drops
  out with a Beta(a, b) distributed probability.
- :class:`ModifiedBetaGeo` (MBG/NBD; Batislam, Denizel and Filiztekin 2007): the same,
  but a customer can also drop out right after the first purchase.
- :class:`ParetoNBD` (Schmittlein, Morrison and Colombo 1987): the lifetime is
  exponential with a Gamma(s, beta) distributed rate.
- :class:`GammaGamma` (Fader, Hardie and Lee 2005): each customer's spend per purchase
  is Gamma(p, nu) with nu ~ Gamma(q, gamma), independent of how often they buy.

The log-likelihoods are written in logs throughout (log-gamma, logaddexp) so that long
histories and large parameters do not overflow; fitting is by maximum likelihood on the
distinct data rows (see :mod:`custintel.clv.fitting`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import betaln, digamma, gammaln, hyp2f1

from custintel.clv.fitting import Fit, Indexed, compress, maximise

WARM_ROWS = 50_000


def _arrays(*values: Any) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def check_rfm(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> None:
    """Refuse histories no model can read, saying what and for how many customers."""
    problems = []
    for name, bad in (
        ("negative frequency", frequency < 0),
        ("a frequency that is not a whole number", frequency != np.floor(frequency)),
        ("negative recency", recency < 0),
        ("recency greater than the age T", recency > T + 1e-9),
        ("zero-length history (T = 0)", T <= 0),
        ("repeat purchases with recency 0", (frequency > 0) & (recency <= 0)),
        ("missing values", np.isnan(frequency) | np.isnan(recency) | np.isnan(T)),
    ):
        n = int(np.sum(bad))
        if n:
            problems.append(f"{n:,} customers with {name}")
    if problems:
        raise ValueError("clv: cannot fit: " + "; ".join(problems))


class _Purchases:
    """Shared fitting of the purchase models; subclasses give the likelihood."""

    names: tuple[str, ...] = ()
    start: tuple[float, ...] = ()

    def __init__(self) -> None:
        self.params_: dict[str, float] = {}
        self.standard_errors_: dict[str, float] = {}
        self.log_likelihood_: float = float("nan")
        self.customers_: int = 0
        self.fit_: Fit | None = None

    @staticmethod
    def _log_likelihood(
        params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def fit(self, frequency: Any, recency: Any, T: Any) -> _Purchases:
        x, t_x, age = _arrays(frequency, recency, T)
        check_rfm(x, t_x, age)
        data = compress(x, t_x, age)
        cx, ct, cT = data.columns
        w = data.weights

        def negative(params: np.ndarray) -> float:
            return -float(np.dot(w, self._log_likelihood(params, cx, ct, cT)))

        gradient = self._gradient(cx, ct, cT, w)
        start = np.array(self.start)
        if gradient is not None and len(w) > WARM_ROWS:
            # Start from the fit of a random 50,000 customers: the full data then needs a
            # few iterations instead of twenty.
            pick = np.random.default_rng(0).choice(len(x), WARM_ROWS, replace=False)
            sample = compress(x[pick], t_x[pick], age[pick])
            sx, st, sT = sample.columns
            warm = self._gradient(sx, st, sT, sample.weights)
            start = maximise(
                lambda q: -float(np.dot(sample.weights, self._log_likelihood(q, sx, st, sT))),
                start,
                gradient=warm,
                errors=False,
            ).params
        fit = maximise(negative, start, gradient=gradient)
        self.fit_ = fit
        self.params_ = dict(zip(self.names, map(float, fit.params), strict=True))
        self.standard_errors_ = dict(zip(self.names, map(float, fit.standard_errors), strict=True))
        self.log_likelihood_ = fit.log_likelihood
        self.customers_ = len(x)
        return self

    def _gradient(
        self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]] | None:
        """The negative log-likelihood and its gradient, when the model has one."""
        return None

    def _p(self) -> tuple[float, ...]:
        if not self.params_:
            raise ValueError("clv: the model is not fitted yet")
        return tuple(self.params_[n] for n in self.names)

    def log_likelihood(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Each customer's log-likelihood at the fitted parameters."""
        x, t_x, age = _arrays(frequency, recency, T)
        return self._log_likelihood(np.array(self._p()), x, t_x, age)


class BetaGeo(_Purchases):
    """BG/NBD."""

    names = ("r", "alpha", "a", "b")
    start = (1.0, 1.0, 1.0, 1.0)

    @staticmethod
    def _log_likelihood(
        params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        r, alpha, a, b = params
        a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
        a3 = -(r + x) * np.log(alpha + T)
        repeat = x > 0
        a4 = np.where(
            repeat,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
        return a1 + a2 + np.logaddexp(a3, a4)

    def _gradient(
        self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]] | None:
        """The negative log-likelihood and its gradient, arranged for speed.

        One-time buyers have likelihood terms in T alone; repeat buyers' terms are written
        with z = a3 - a4 (the log-odds of "still alive" against "gone at the last
        purchase"), so that every sum over customers is a dot product, and everything
        that depends on frequency alone is summed per distinct frequency."""
        if type(self) is not BetaGeo:
            return None
        once = x == 0
        W = float(w.sum())
        # one-time buyers: by distinct T
        T0 = Indexed.of(T[once])
        w0 = np.bincount(T0.index, weights=w[once], minlength=len(T0.values))
        # repeat buyers
        rep = ~once
        xr, wr = x[rep], w[rep]
        X = Indexed.of(xr)
        wx = np.bincount(X.index, weights=wr, minlength=len(X.values))
        TT, tt = Indexed.of(T[rep]), Indexed.of(t_x[rep])
        wrx = wr * xr

        def value_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
            r, alpha, a, b = params
            v = X.values
            lga = gammaln(r) + gammaln(b) - gammaln(a + b)
            head = gammaln(r + v) + gammaln(b + v) - gammaln(a + b + v) - lga
            d_r_head = digamma(r + v) - digamma(r)
            d_a_head = digamma(a + b) - digamma(a + b + v)
            d_b_head = d_a_head + digamma(b + v) - digamma(b)
            log_bx = np.log(b + v - 1)
            c = np.log(a) - log_bx  # per distinct frequency
            # one-time buyers: r ln(alpha) - r ln(alpha + T)
            log0 = np.log(alpha + T0.values)
            ll = W * r * np.log(alpha) - r * float(np.dot(w0, log0))
            g_r = W * np.log(alpha) - float(np.dot(w0, log0))
            g_alpha = W * r / alpha - r * float(np.dot(w0, 1 / (alpha + T0.values)))
            # repeat buyers
            log_T = np.log(alpha + TT.values)[TT.index]
            log_t = np.log(alpha + tt.values)[tt.index]
            rx = r + xr
            z = -rx * (log_T - log_t) - c[X.index]
            soft = np.logaddexp(0.0, z)  # log(1 + e^z)
            stay = np.exp(z - soft)  # share of the "alive" branch
            ll += (
                float(np.dot(wx, head + c))
                - r * float(np.dot(wr, log_t))
                - float(np.dot(wrx, log_t))
                + float(np.dot(wr, soft))
            )
            ws = wr * stay
            g_r += (
                float(np.dot(wx, d_r_head))
                - float(np.dot(wr, log_t))
                - float(np.dot(ws, log_T - log_t))
            )
            inv_T = (1 / (alpha + TT.values))[TT.index]
            inv_t = (1 / (alpha + tt.values))[tt.index]
            g_alpha -= float(np.dot(wr * rx, inv_t + stay * (inv_T - inv_t)))
            gone = np.bincount(X.index, weights=wr - ws, minlength=len(v))  # per frequency
            g_a = float(np.dot(wx, d_a_head)) + float(gone.sum()) / a
            g_b = float(np.dot(wx, d_b_head)) - float(np.dot(gone, 1 / (b + v - 1)))
            return -ll, -np.array([g_r, g_alpha, g_a, g_b])

        return value_and_gradient

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        r, alpha, a, b = self._p()
        x, t_x, age = _arrays(frequency, recency, T)
        log_odds = (
            np.log(a)
            - np.log(np.maximum(b + x - 1, 1e-300))
            + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
        )
        return np.where(x > 0, 1 / (1 + np.exp(log_odds)), 1.0)

    def conditional_expected_purchases(
        self, t: float, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray:
        """Expected purchases in the next ``t`` given each customer's history."""
        r, alpha, a, b = self._p()
        x, _, age = _arrays(frequency, recency, T)
        ratio = (alpha + age) / (alpha + age + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
        head = (a + b + x - 1) / (a - 1)
        return head * (1 - ratio ** (r + x) * hyp) * self.probability_alive(frequency, recency, T)

    def expected_purchases(self, t: Any) -> np.ndarray:
        """Expected purchases in a period of length ``t`` of a customer just acquired."""
        r, alpha, a, b = self._p()
        (t,) = _arrays(t)
        hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)


class ModifiedBetaGeo(BetaGeo):
    """MBG/NBD: as BG/NBD, and a customer may drop out right after the first purchase."""

    @staticmethod
    def _log_likelihood(
        params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        r, alpha, a, b = params
        a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        a2 = betaln(a, b + x + 1) - betaln(a, b)
        a3 = -(r + x) * np.log(alpha + T)
        a4 = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return a1 + a2 + a3 + np.logaddexp(0.0, a4)

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        r, alpha, a, b = self._p()
        x, t_x, age = _arrays(frequency, recency, T)
        log_odds = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
        return 1 / (1 + np.exp(log_odds))

    def conditional_expected_purchases(
        self, t: float, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray:
        r, alpha, a, b = self._p()
        x, _, age = _arrays(frequency, recency, T)
        ratio = (alpha + age) / (alpha + age + t)
        hyp = hyp2f1(r + x, b + x + 1, a + b + x, t / (alpha + age + t))
        head = (a + b + x) / (a - 1)
        return head * (1 - ratio ** (r + x) * hyp) * self.probability_alive(frequency, recency, T)

    def expected_purchases(self, t: Any) -> np.ndarray:
        r, alpha, a, b = self._p()
        (t,) = _arrays(t)
        hyp = hyp2f1(r, b + 1, a + b, t / (alpha + t))
        return (a + b) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)


class ParetoNBD(_Purchases):
    """Pareto/NBD."""

    names = ("r", "alpha", "s", "beta")
    start = (1.0, 1.0, 1.0, 1.0)

    @staticmethod
    def _log_likelihood(
        params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        r, alpha, s, beta = params
        big, gap = max(alpha, beta), abs(alpha - beta)
        second = s + 1 if alpha >= beta else r + x
        total = r + s + x
        # log of [2F1(.; z1) / (big + t_x)^total - 2F1(.; z2) / (big + T)^total], the
        # first term always the larger; hyp2f1 of these arguments stays finite
        l1 = np.log(hyp2f1(total, second, total + 1, gap / (big + t_x))) - total * np.log(big + t_x)
        l2 = np.log(hyp2f1(total, second, total + 1, gap / (big + T))) - total * np.log(big + T)
        with np.errstate(divide="ignore"):  # recency == T: the second part is exactly 0
            log_a0 = l1 + np.log1p(-np.exp(np.minimum(l2 - l1, 0.0)))
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        stay = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        left = np.log(s) - np.log(total) + log_a0
        return head + np.logaddexp(stay, left)

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        r, alpha, s, beta = self._p()
        x, t_x, age = _arrays(frequency, recency, T)
        ll = self._log_likelihood(np.array([r, alpha, s, beta]), x, t_x, age)
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        stay = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
        return np.exp(head + stay - ll)

    def conditional_expected_purchases(
        self, t: float, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray:
        r, alpha, s, beta = self._p()
        x, _, age = _arrays(frequency, recency, T)
        alive = self.probability_alive(frequency, recency, T)
        mean = (r + x) * (beta + age) / ((alpha + age) * (s - 1))
        return alive * mean * (1 - ((beta + age) / (beta + age + t)) ** (s - 1))

    def expected_purchases(self, t: Any) -> np.ndarray:
        r, alpha, s, beta = self._p()
        (t,) = _arrays(t)
        return r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + t)) ** (s - 1))


class GammaGamma:
    """Spend per purchase: Gamma(p, nu) per purchase, nu ~ Gamma(q, gamma) per customer.

    Fitted on repeat buyers only (``frequency`` > 0) with their mean spend per repeat
    purchase; :meth:`independence` gives the correlation between frequency and mean
    spend, which the model assumes to be about zero."""

    names = ("p", "q", "gamma")

    def __init__(self) -> None:
        self.params_: dict[str, float] = {}
        self.standard_errors_: dict[str, float] = {}
        self.log_likelihood_: float = float("nan")
        self.customers_: int = 0

    @staticmethod
    def _log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        p, q, gamma = params
        return (
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(gamma)
            + (p * x - 1) * np.log(m)
            + p * x * np.log(x)
            - (p * x + q) * np.log(gamma + m * x)
        )

    @staticmethod
    def _gradient(x: np.ndarray, m: np.ndarray) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """Value and gradient with every term that does not involve gamma summed once:
        the log-gammas per distinct frequency, the sums of log m and x log m and x log x
        up front; only log(gamma + m x) is evaluated per customer."""
        ux = Indexed.of(x)
        counts = np.bincount(ux.index).astype(float)
        n = float(len(x))
        sum_log_m = float(np.log(m).sum())
        sum_x_log_m = float(np.dot(x, np.log(m)))
        sum_x_log_x = float(np.dot(x, np.log(x)))
        mx = m * x

        def value_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
            p, q, gamma = params
            v = ux.values
            per_x = gammaln(p * v + q) - gammaln(p * v)
            log_tail = np.log(gamma + mx)
            ll = (
                float(np.dot(counts, per_x))
                - n * gammaln(q)
                + n * q * np.log(gamma)
                + p * sum_x_log_m
                - sum_log_m
                + p * sum_x_log_x
                - float(np.dot(p * x + q, log_tail))
            )
            d_p = (
                float(np.dot(counts, v * (digamma(p * v + q) - digamma(p * v))))
                + sum_x_log_m
                + sum_x_log_x
                - float(np.dot(x, log_tail))
            )
            d_q = (
                float(np.dot(counts, digamma(p * v + q)))
                - n * digamma(q)
                + n * np.log(gamma)
                - float(log_tail.sum())
            )
            d_gamma = n * q / gamma - float(np.sum((p * x + q) / (gamma + mx)))
            return -ll, -np.array([d_p, d_q, d_gamma])

        return value_and_gradient

    @staticmethod
    def independence(frequency: Any, monetary: Any) -> float:
        """Pearson correlation of frequency and mean spend among repeat buyers."""
        x, m = _arrays(frequency, monetary)
        keep = x > 0
        if keep.sum() < 3:
            return float("nan")
        return float(np.corrcoef(x[keep], m[keep])[0, 1])

    def fit(self, frequency: Any, monetary: Any) -> GammaGamma:
        x, m = _arrays(frequency, monetary)
        keep = x > 0
        if not keep.any():
            raise ValueError(
                f"clv: cannot fit Gamma-Gamma: none of the {len(x):,} customers made a "
                "repeat purchase"
            )
        bad = int(np.sum(keep & ~(m > 0)))
        if bad:
            raise ValueError(
                f"clv: cannot fit Gamma-Gamma: {bad:,} repeat buyers have a mean spend "
                "that is not positive"
            )
        x, m = x[keep], m[keep]

        def negative(params: np.ndarray) -> float:
            return -float(np.sum(self._log_likelihood(params, x, m)))

        fit = maximise(negative, np.array([1.0, 1.0, 1.0]), gradient=self._gradient(x, m))
        self.params_ = dict(zip(self.names, map(float, fit.params), strict=True))
        self.standard_errors_ = dict(zip(self.names, map(float, fit.standard_errors), strict=True))
        self.log_likelihood_ = fit.log_likelihood
        self.customers_ = int(keep.sum())
        return self

    def expected_spend(self, frequency: Any, monetary: Any) -> np.ndarray:
        """Expected spend per purchase: the population mean shrunk toward each repeat
        buyer's own mean as their purchases add up."""
        if not self.params_:
            raise ValueError("clv: the model is not fitted yet")
        p, q, gamma = (self.params_[n] for n in self.names)
        x, m = _arrays(frequency, monetary)
        population = p * gamma / (q - 1)
        own = (p * (gamma + x * m)) / (p * x + q - 1)
        return np.where(x > 0, own, population)
