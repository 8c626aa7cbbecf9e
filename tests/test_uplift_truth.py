"""Uplift against the simulator's truth: learned from the simulated shop's four past
randomized campaigns (features as of each send, outcomes from the warehouse), scored as of
the as-of date, and judged by every customer's true effect of the retention offer there,
which the simulator knows (sleeping dogs included)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from custintel.cli.main import app
from custintel.core.config import dump_config, load_config
from custintel.measure.uplift_metrics import true_policy_value
from custintel.pipeline.project import Project
from custintel.pipeline.simulation import (
    person_of_customers,
    simulation_campaigns,
    simulation_measurement,
)
from custintel.simulate.playout import play_out

from .conftest import churn_scores_from_clv, parse_json_output

AS_OF = dt.date(2025, 6, 30)
TOP = 0.3


@pytest.fixture(scope="module")
def learned(resolved_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("uplift") / "shop"
    shutil.copytree(resolved_shop, project)
    cfg = load_config(project)
    cfg = cfg.model_copy(
        update={"measurement": simulation_measurement(project / "data"), **simulation_campaigns()}
    )
    (project / "custintel.yaml").write_text(dump_config(cfg), encoding="utf-8")
    with Project.open(project) as p:
        churn_scores_from_clv(p, AS_OF)
        trained = p.uplift_train("winback", top=TOP)
        scored = p.uplift_score("winback", AS_OF)
        scores = p.warehouse.table("scores", "uplift_winback").execute()
        person = person_of_customers(p.warehouse, project / "data")
        data, features = p.uplift_frame()
        now = p.uplift_features(AS_OF)
    everyone = pd.DataFrame({"customer_id": person.index, "person_id": person.to_numpy()})
    truth = play_out(
        project / "data",
        everyone.assign(offer="winback_voucher", channel="email", variant="control"),
        campaign_id="winback",
    ).outcomes
    truth.index = everyone.customer_id.to_numpy()
    return {
        "project": project,
        "trained": trained,
        "scored": scored,
        "scores": scores,
        "truth": truth,
        "data": data,
        "features": features,
        "now": now,
    }


def _judge(learned: dict[str, Any], score: pd.Series) -> tuple[float, float]:
    """Policy value under the truth of treating the top share by ``score`` (customers
    the simulator knows), and the oracle's (the top share by true effect)."""
    effect = learned["truth"].effect
    s = score.reindex(effect.index).fillna(-np.inf).to_numpy()
    return (
        true_policy_value(s, effect.to_numpy(), TOP),
        true_policy_value(effect.to_numpy(), effect.to_numpy(), TOP),
    )


def test_learners_are_compared_out_of_fold_and_the_data_chooses(learned: dict[str, Any]) -> None:
    t = pd.DataFrame(learned["trained"]["learners"]).set_index("learner")
    assert set(t.index) == {"t", "x", "dr", "response"}
    chosen = learned["trained"]["chosen"]
    assert t.loc[chosen, "policy_value_top"] == t.drop(index="response").policy_value_top.max()
    # Out of fold, on the randomized groups: uplift ranks beat the response ranking.
    assert t.loc[chosen, "auuc"] > t.loc["response", "auuc"]
    assert t.loc[chosen, "policy_value_top"] > t.loc["response", "policy_value_top"]
    assert learned["trained"]["campaigns"] == sorted(
        ["CMP-2023-AUT", "CMP-2024-SPR", "CMP-2024-WIN", "CMP-2025-SPR"]
    )


def test_treating_the_top_30_percent_by_uplift_is_near_the_oracle(
    learned: dict[str, Any],
) -> None:
    uplift = learned["scores"].set_index("customer_id").uplift
    value, oracle = _judge(learned, uplift)
    # The usual targeting: each customer's outcome if treated, from the treated alone.
    from lightgbm import LGBMRegressor

    from custintel.measure.uplift import DEFAULT_PARAMS

    data, features, now = learned["data"], learned["features"], learned["now"]
    treated = data[data.treated]
    response = LGBMRegressor(**{**DEFAULT_PARAMS, "random_state": 0}).fit(
        treated[features].to_numpy("float64"), treated.y.to_numpy()
    )
    by_response = pd.Series(
        response.predict(now[features].to_numpy("float64")), index=now.customer_id
    )
    response_value, _ = _judge(learned, by_response)
    learned["figures"] = {"uplift": value, "oracle": oracle, "response": response_value}
    assert value > response_value
    assert value >= 0.65 * oracle, learned["figures"]


def test_sleeping_dogs_are_found_and_a_campaign_can_leave_them_alone(
    learned: dict[str, Any], runner
) -> None:
    scores, truth = learned["scores"].set_index("customer_id"), learned["truth"]
    both = truth.join(scores[["sleeping_dog"]], how="inner")
    dogs = both[both.sleeping_dog]
    assert learned["scored"]["sleeping_dogs"] == int(scores.sleeping_dog.sum()) > 100
    # Those flagged are mostly truly harmed (against about one in ten of everyone), and
    # hold most of the truly harmed.
    harmed = both.effect < 0
    learned["dogs"] = {
        "base": harmed.mean(),
        "precision": (dogs.effect < 0).mean(),
        "recall": both.sleeping_dog[harmed].mean(),
    }
    assert learned["dogs"]["precision"] > max(0.5, 4 * learned["dogs"]["base"])
    assert learned["dogs"]["recall"] > 0.4
    project = learned["project"]
    cfg = load_config(project)
    campaigns = dict(cfg.campaigns)
    campaigns["winback"] = campaigns["winback"].model_copy(update={"sleeping_dogs": "exclude"})
    (project / "custintel.yaml").write_text(
        dump_config(cfg.model_copy(update={"campaigns": campaigns})), encoding="utf-8"
    )
    result = runner.invoke(
        app,
        ["campaign", "plan", "winback", "--project", str(project), "--as-of", str(AS_OF), "--json"],
    )
    assert result.exit_code == 0, result.output
    out = parse_json_output(result.stdout)
    assert out["excluded_by"].get("sleeping_dog", 0) > 0


def test_the_cli_trains_on_named_campaigns_and_names_a_bad_one(
    learned: dict[str, Any], runner
) -> None:
    project = str(learned["project"])
    bad = runner.invoke(
        app,
        ["uplift", "train", "winback", "--project", project, "--campaigns", "CMP-2024-WIN,NOPE"],
    )
    assert bad.exit_code == 1 and "NOPE not in the contact history" in bad.output
    report = runner.invoke(app, ["report", "--project", project])
    assert report.exit_code == 0, report.output
    page = (learned["project"] / "reports" / "measurement.html").read_text()
    assert "Uplift models" in page and "uplift_winback v1" in page and "Qini" in page
