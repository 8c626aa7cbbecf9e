"""Targeting against the simulator's truth: the simulated shop's retention campaign,
decided on model scores (the churn propensity is the CLV model's 1 - P(alive), a real
model fitted on the purchases), played out in the simulation, and judged by every
customer's true incremental value under the same effect model, sleeping dogs included.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from custintel.core.config import dump_config, load_config
from custintel.pipeline.project import Project
from custintel.pipeline.simulation import simulation_campaigns

from .conftest import churn_scores_from_clv

AS_OF = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def played(resolved_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("truth") / "shop"
    shutil.copytree(resolved_shop, project)
    cfg = load_config(project).model_copy(update=simulation_campaigns())
    (project / "custintel.yaml").write_text(dump_config(cfg), encoding="utf-8")
    with Project.open(project) as p:
        churn_scores_from_clv(p, AS_OF)
        run = p.campaign_run("winback", AS_OF, deliver=False)
        out = p.campaign_play_out("winback", AS_OF)
    data = project / "data"
    return {"run": run, "out": out, "data": data,
            "policies": pd.DataFrame(out["policies"]).set_index("policy")}  # fmt: skip


def test_targeting_by_propensity_and_value_beats_random_and_everyone(
    played: dict[str, Any],
) -> None:
    t = played["policies"]
    assert t.loc["campaign", "contacts"] == played["run"]["treatment"] > 1000
    # value at risk under a sleeping-dog guard: well above a random draw and everyone
    assert t.loc["campaign", "vs_random"] > 1.2
    assert t.loc["campaign", "vs_everyone"] > 1.2
    assert t.loc["by_value", "vs_random"] > 1.2
    assert t.loc["everyone", "contacts"] > 10_000


def test_holdout_share_is_within_half_a_point(played: dict[str, Any]) -> None:
    assert abs(played["out"]["holdout_share"] - 0.1) < 0.005


def test_what_happened_follows_the_potential_outcomes(played: dict[str, Any]) -> None:
    """The played-out orders match the truth: the treated responders' extra orders are
    as many as their expected effect says (a Poisson total, within four standard
    deviations), the held-out got none, and sleeping dogs lost orders."""
    data = played["data"]
    outcomes = pd.read_parquet(data / "truth" / "playout" / "winback" / "outcomes.parquet")
    extra = pd.read_csv(data / "shop" / "orders_winback.csv", dtype=str)
    removed = pd.read_parquet(data / "truth" / "playout" / "winback" / "removed_orders.parquet")
    treated = outcomes[outcomes.variant == "treatment"]
    strongest = (
        treated.assign(s=(treated.multiplier - 1).abs())
        .sort_values(["person_id", "s"], ascending=[True, False])
        .drop_duplicates("person_id")
    )
    gain = strongest[strongest.multiplier > 1]
    expected = float(gain.effect.sum())
    assert expected > 100
    assert abs(len(extra) - expected) < 4 * np.sqrt(expected) + 0.02 * expected
    control = set(outcomes.loc[outcomes.variant == "control", "person_id"])
    assert not control & set(removed.person_id)
    contacts = pd.read_csv(data / "marketing" / "contacts_winback.csv", dtype=str)
    assert len(contacts) == len(outcomes)
    assert set(contacts["group"]) == {"treatment", "control"}


def test_measured_lift_of_the_played_out_campaign_covers_its_true_effect(
    played: dict[str, Any],
) -> None:
    """What each person did in the effect window of the played-out world (the orders they
    would have made, less those the contact put off, plus the extra ones), measured with
    the lift the measurement stage uses: its 95 % interval covers the true average effect
    (each person's expected change under the action they were, or would have been, sent)."""
    from custintel.measure.lift import Metric, lift_table
    from custintel.simulate.campaigns import Response

    data = played["data"]
    truth = data / "truth"
    outcomes = pd.read_parquet(truth / "playout" / "winback" / "outcomes.parquet")
    removed = pd.read_parquet(truth / "playout" / "winback" / "removed_orders.parquet")
    records = pd.read_parquet(truth / "records.parquet")
    orders = pd.read_parquet(truth / "orders.parquet")
    extra = pd.read_csv(data / "shop" / "orders_winback.csv", dtype=str)
    week = 104.0
    window = orders[
        (orders.week >= week) & (orders.week < week + Response().effect_weeks) & ~orders.is_return
    ]
    window = window[~window.order_id.isin(removed.order_id)]
    person_of = records.drop_duplicates("source_id").set_index("source_id").person_id
    added = person_of.reindex(extra.account_id).dropna()
    people = (
        outcomes.assign(s=(outcomes.multiplier - 1).abs())
        .sort_values(["person_id", "s"], ascending=[True, False], kind="stable")
        .drop_duplicates("person_id")
    )
    both = outcomes.groupby("person_id").variant.nunique()
    people = people[~people.person_id.isin(both[both > 1].index)]
    done = window.groupby("person_id").size().add(added.value_counts(), fill_value=0)
    frame = pd.DataFrame(
        {
            "arm": people.variant.to_numpy(),
            "orders": done.reindex(people.person_id, fill_value=0).to_numpy(float),
        }
    )
    row = lift_table(frame, [Metric("orders")], control="control").iloc[0]
    true = float(people.effect.mean())
    assert row.low <= true <= row.high, (row.low, row.high, true)
    assert row.high - row.low < 0.2  # an interval that says something
