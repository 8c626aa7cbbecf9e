"""CLV on the simulated shop: fitted in the warehouse, validated on a holdout, scored,
and checked against the simulator's truth."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from custintel.cli.main import app
from custintel.core.errors import StageError
from custintel.pipeline.project import Project
from tests.conftest import persona_of_customers

AS_OF = dt.date(2025, 6, 30)


def test_fit_validate_and_score_against_the_truth(
    resolved_shop: Path, tmp_path: Path, runner
) -> None:
    project = tmp_path / "shop"
    shutil.copytree(resolved_shop, project)
    with Project.open(project) as p:
        with pytest.raises(StageError, match="no CLV model yet"):
            p.score_clv(AS_OF)
        fit = p.clv_fit(AS_OF)
        check = p.clv_validate(dt.date(2024, 6, 30), dt.date(2025, 6, 29))
        half = p.clv_validate(dt.date(2024, 12, 31), dt.date(2025, 6, 29))
        first = p.score_clv(AS_OF)
        again = p.score_clv(AS_OF)  # the same date and version: replaced, not added
        scores = p.warehouse.table("scores", "clv").execute()
        with pytest.raises(StageError, match="must end after"):
            p.clv_validate(dt.date(2025, 1, 1), dt.date(2024, 1, 1))
    assert fit["model"] == "bgnbd" and fit["repeat_buyers"] > 0.5 * fit["customers"]
    assert all(v > 0 for v in fit["purchases"]["standard_errors"].values())
    assert first["customers"] == again["customers"] == len(scores) == scores.customer_id.nunique()
    # on the holdout every model is within 15 % in total and beats both naive guesses
    for name, m in check["models"].items():
        assert abs(m["aggregate_error"]) < 0.15, (name, m["aggregate_error"])
        assert m["model"]["mae"] < min(m["naive_zero"]["mae"], m["naive_same"]["mae"]), name
        by = pd.DataFrame(m["by_frequency"])
        assert by.actual.is_monotonic_increasing or by.actual.iloc[-1] > by.actual.iloc[0]
    # next half year's spend two ways on the same customers: both rank it, neither
    # sees the holdout (the LightGBM alternative learns from the half year before)
    spend = half["spend"]
    assert spend["customers"] == half["models"]["bgnbd"]["customers"]
    for way in ("btyd", "lightgbm"):
        assert spend[way]["spearman"] > 0.5 and spend[way]["top_decile_revenue_share"] > 0.3
        assert abs(spend[way]["predicted_total"] / spend["actual_total"] - 1) < 0.5, way
    # P(alive) ranks who is really still alive, and the CLV is concentrated
    linked = persona_of_customers(project)
    people = linked.groupby("customer_id").agg(
        n=("person_id", "nunique"), alive=("alive_at_as_of", "first")
    )
    both = scores.set_index("customer_id").join(people[people.n == 1], how="inner")
    assert roc_auc_score(both.alive, both.p_alive) > 0.8
    assert ((scores.p_alive >= 0) & (scores.p_alive <= 1)).all() and (scores.clv >= 0).all()
    assert 0.3 < first["top_decile_share"] < 0.9
    # a longer horizon is worth more; a higher discount rate less
    with Project.open(project) as p:
        longer = p.score_clv(AS_OF, horizon_days=730)
        steeper = p.score_clv(AS_OF, discount=0.5)
    assert longer["total_clv"] > first["total_clv"] > steeper["total_clv"]
    r = runner.invoke(
        app,
        ["clv", "fit", "-p", str(project), "--as-of", "2025-06-30", "--model", "pareto", "--json"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"] == "pareto"
    r = runner.invoke(
        app, ["clv", "fit", "-p", str(project), "--as-of", "2025-06-30", "--model", "nope"]
    )
    assert r.exit_code != 0
    assert np.isfinite(fit["spend"]["frequency_spend_correlation"])
    from custintel.report import write_reports

    with Project.open(project) as p:
        page = (write_reports(p).parent / "clv.html").read_text()
    for text in ("Holdout check", "P(alive)", "by decile", "standard error"):
        assert text in page, text
