"""The purchase and spend models against the published CDNOW results (Fader, Hardie and
Lee 2005; Fader and Hardie's notes), as regression tests, plus the refusals."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from custintel.clv.models import BetaGeo, GammaGamma, ModifiedBetaGeo, ParetoNBD
from custintel.clv.summary import from_transactions
from tests.conftest import SHARED_DATA

CDNOW = SHARED_DATA / "cdnow_sample.txt"


def _cdnow_lines() -> pd.DataFrame:
    """The CDNOW sample's lines: customer, date, CDs, dollars."""
    raw = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample", "date", "cds", "amount"],
        dtype={"customer_id": str, "date": str},
    )
    raw["date"] = pd.to_datetime(raw.date, format="%Y%m%d")
    return raw


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    if not CDNOW.exists():
        pytest.skip(f"{CDNOW} is not here")
    raw = _cdnow_lines()
    # 39 weeks of calibration (273 days from 1997-01-01), 39 weeks of holdout
    return from_transactions(
        raw,
        customer="customer_id",
        when="date",
        amount="amount",
        end=dt.date(1997, 9, 30),
        holdout_end=dt.date(1998, 6, 30),
    )


def _rounded(params: dict[str, float], digits: int) -> dict[str, float]:
    return {k: round(v, digits) for k, v in params.items()}


def test_summary_matches_the_published_data(cdnow: pd.DataFrame) -> None:
    assert len(cdnow) == 2357 and (cdnow.frequency > 0).sum() == 946
    assert cdnow["T"].max() == pytest.approx(38.86, abs=0.005)
    assert cdnow.holdout_frequency.sum() == 1882


def test_bg_nbd_reproduces_the_paper(cdnow: pd.DataFrame) -> None:
    m = BetaGeo().fit(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert _rounded(m.params_, 3) == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert m.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert m.conditional_expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)
    # the known under-forecast of the holdout: about 1,653 predicted against 1,882
    predicted = m.conditional_expected_purchases(39, cdnow.frequency, cdnow.recency, cdnow["T"])
    assert predicted.sum() == pytest.approx(1653, abs=2)
    assert all(
        0 < e < v for e, v in zip(m.standard_errors_.values(), m.params_.values(), strict=True)
    )
    alive = m.probability_alive(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert ((alive > 0) & (alive <= 1)).all() and (alive[cdnow.frequency == 0] == 1).all()


def test_pareto_nbd_reproduces_the_paper(cdnow: pd.DataFrame) -> None:
    m = ParetoNBD().fit(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert _rounded(m.params_, 2) == {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}
    assert m.log_likelihood_ == pytest.approx(-9595.0, abs=0.05)
    alive = m.probability_alive(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert ((alive > 0) & (alive <= 1)).all()


def test_modified_bg_nbd_fits_at_least_as_well(cdnow: pd.DataFrame) -> None:
    bg = BetaGeo().fit(cdnow.frequency, cdnow.recency, cdnow["T"])
    mbg = ModifiedBetaGeo().fit(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert mbg.log_likelihood_ > bg.log_likelihood_ - 1
    # one-time buyers can be gone in MBG/NBD, never in BG/NBD
    assert mbg.probability_alive(0, 0, 38.86) < 1


def test_gamma_gamma_reproduces_the_paper(cdnow: pd.DataFrame) -> None:
    m = GammaGamma().fit(cdnow.frequency, cdnow.monetary)
    assert _rounded(m.params_, 2) == {"p": 6.25, "q": 3.74, "gamma": 15.44}
    assert m.customers_ == 946
    assert abs(GammaGamma.independence(cdnow.frequency, cdnow.monetary)) < 0.2
    spend = m.expected_spend(cdnow.frequency, cdnow.monetary)
    assert np.unique(spend[cdnow.frequency == 0].round(4)).size == 1  # the population mean


def test_bad_histories_are_named_with_counts() -> None:
    with pytest.raises(ValueError, match="1 customers with negative recency"):
        BetaGeo().fit([1, 2], [-1, 3], [5, 5])
    with pytest.raises(ValueError, match="2 customers with recency greater than the age T"):
        BetaGeo().fit([1, 2, 0], [6, 7, 0], [5, 5, 5])
    with pytest.raises(ValueError, match="1 customers with zero-length history"):
        ParetoNBD().fit([0, 1], [0, 1], [0, 3])
    with pytest.raises(ValueError, match="none of the 3 customers made a repeat purchase"):
        GammaGamma().fit([0, 0, 0], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="not fitted"):
        BetaGeo().probability_alive(1, 1, 2)
    assert np.isnan(GammaGamma.independence([0, 0], [1.0, 2.0]))


def _bg_nbd_customers(n: int, seed: int) -> pd.DataFrame:
    """Customers drawn from the BG/NBD process itself: r 0.25, alpha 4, a 0.8, b 2.5."""
    rng = np.random.default_rng(seed)
    lam, drop = rng.gamma(0.25, 1 / 4.0, n), rng.beta(0.8, 2.5, n)
    T = rng.integers(7, 3 * 365, n) / 7.0
    x, t_x, t = np.zeros(n), np.zeros(n), np.zeros(n)
    buying, died = np.ones(n, bool), np.zeros(n, bool)
    while buying.any():
        nxt = t + rng.exponential(1.0, n) / np.maximum(lam, 1e-12)
        ok = buying & (nxt < T)
        t, x, t_x = np.where(ok, nxt, t), x + ok, np.where(ok, nxt, t_x)
        gone = ok & (rng.random(n) < drop)  # drops out right after this purchase
        died |= gone
        buying = ok & ~gone
    recency = np.minimum(np.ceil(t_x * 7), T * 7) / 7
    return pd.DataFrame({"frequency": x, "recency": recency, "T": T, "alive": ~died})


def test_parameters_are_recovered_from_their_own_process() -> None:
    d = _bg_nbd_customers(200_000, seed=5)
    m = BetaGeo().fit(d.frequency, d.recency, d["T"])
    true = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    for k, v in true.items():
        # within three standard errors of the truth, and the errors are small
        assert abs(m.params_[k] - v) < 3 * m.standard_errors_[k] + 1e-9, (k, m.params_)
        assert m.standard_errors_[k] < 0.1 * v
    # P(alive) is calibrated against who really had not dropped out
    alive = m.probability_alive(d.frequency, d.recency, d["T"])
    bins = pd.qcut(alive, 10, duplicates="drop")
    table = pd.DataFrame({"p": alive, "y": d.alive}).groupby(bins, observed=True).mean()
    assert (table.p - table.y).abs().max() < 0.03, table


def test_analytic_gradients_match_differences(cdnow: pd.DataFrame) -> None:
    from custintel.clv.fitting import compress

    data = compress(cdnow.frequency, cdnow.recency, cdnow["T"])
    x, t_x, T = data.columns
    f = BetaGeo()._gradient(x, t_x, T, data.weights)
    params = np.array([0.3, 5.0, 0.7, 2.0])
    value, grad = f(params)
    assert value == pytest.approx(-np.dot(data.weights, BetaGeo._log_likelihood(params, x, t_x, T)))
    for i in range(4):
        h = np.zeros(4)
        h[i] = 1e-6 * params[i]
        numeric = (f(params + h)[0] - f(params - h)[0]) / (2 * h[i])
        assert grad[i] == pytest.approx(numeric, rel=1e-5)
    repeat = cdnow.frequency > 0
    gx, gm = cdnow.frequency[repeat].to_numpy(float), cdnow.monetary[repeat].to_numpy(float)
    g = GammaGamma._gradient(gx, gm)
    params = np.array([5.0, 3.0, 12.0])
    value, grad = g(params)
    assert value == pytest.approx(-GammaGamma._log_likelihood(params, gx, gm).sum())
    for i in range(3):
        h = np.zeros(3)
        h[i] = 1e-6 * params[i]
        numeric = (g(params + h)[0] - g(params - h)[0]) / (2 * h[i])
        assert grad[i] == pytest.approx(numeric, rel=1e-5)


def test_warehouse_summary_matches_the_pandas_one(cdnow: pd.DataFrame) -> None:
    """The Ibis summary on DuckDB gives the same rows as the published set-up."""
    import ibis

    from custintel.clv.summary import rfm_table

    raw = _cdnow_lines()
    epoch = pd.Timestamp("1970-01-01")
    raw["day"] = (raw.date - epoch).dt.days
    raw["is_return"] = False
    con = ibis.duckdb.connect()
    orders = con.create_table("orders", raw[["customer_id", "day", "amount", "is_return"]])
    as_of = (pd.Timestamp("1997-10-01") - epoch).days
    got = rfm_table(orders, as_of, holdout_days=273).to_pandas()
    got = got.set_index("customer_id").sort_index()
    want = cdnow.set_index("customer_id").sort_index()
    assert len(got) == len(want) == 2357
    for column in ("frequency", "recency", "T", "monetary", "holdout_frequency"):
        assert np.allclose(got[column].to_numpy(float), want[column].to_numpy(float)), column
