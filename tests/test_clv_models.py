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


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    if not CDNOW.exists():
        pytest.skip(f"{CDNOW} is not here")
    raw = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["customer", "sample", "date", "cds", "value"],
        dtype={"customer": str, "date": str},
    )
    raw["date"] = pd.to_datetime(raw.date, format="%Y%m%d")
    # 39 weeks of calibration (273 days from 1997-01-01), 39 weeks of holdout
    return from_transactions(
        raw,
        customer="customer",
        when="date",
        amount="value",
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
