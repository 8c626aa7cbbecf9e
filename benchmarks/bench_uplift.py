"""Uplift against the simulator's truth, and its stability over seeds.

    python benchmarks/bench_uplift.py [--customers 20000] [--seeds 5] [--project DIR]

Simulates a shop (or uses ``--project``, a simulated project with identities resolved),
learns uplift from its four past randomized campaigns (``Project.uplift_train``: T-, X-
and DR-learners compared out of fold), scores every customer as of the as-of date and
judges the policy "treat the top 30 %" by every customer's true effect of the retention
offer there (the simulator's potential outcomes): against the oracle (the top 30 % by true
effect), a response ranking, a random draw and treating everyone. Then the same with the
chosen learner refitted with each seed (a bag of five fits each, as registered), for the
spread of that policy value.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.measure.uplift import DEFAULT_PARAMS, fit
from custintel.measure.uplift_metrics import true_policy_value
from custintel.pipeline.project import Project, init_project
from custintel.pipeline.simulation import person_of_customers, simulation_project
from custintel.pipeline.uplift_tasks import BAG
from custintel.simulate.playout import play_out
from custintel.simulate.writer import SimulationConfig, simulate

AS_OF = dt.date(2025, 6, 30)
TOP = 0.3


def shop(customers: int, folder: Path) -> Path:
    simulate(folder / "data", SimulationConfig(customers=customers, seed=11))
    init_project(folder, simulation_project(folder / "data", folder))
    with Project.open(folder) as p:
        p.ingest()
        p.identity_resolve()
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--project", type=Path)
    args = ap.parse_args()
    folder = args.project or shop(args.customers, Path(tempfile.mkdtemp()) / "shop")
    with Project.open(folder) as p:
        start = time.perf_counter()
        data, features = p.uplift_frame()
        framed = time.perf_counter() - start
        start = time.perf_counter()
        trained = p.uplift_train("winback", top=TOP)
        seconds = time.perf_counter() - start
        now = p.uplift_features(AS_OF)
        person = person_of_customers(p.warehouse, folder / "data")
    everyone = pd.DataFrame({"customer_id": person.index, "person_id": person.to_numpy()})
    truth = play_out(
        folder / "data",
        everyone.assign(offer="winback_voucher", channel="email", variant="control"),
        campaign_id="winback",
    ).outcomes.set_index(everyone.customer_id.to_numpy())
    now = now[now.customer_id.isin(truth.index)].reset_index(drop=True)
    effect = truth.effect.reindex(now.customer_id).to_numpy()
    x_now = now[features].to_numpy("float64").round(9)
    x = data[features].to_numpy("float64").round(9)
    t, y, p_ = data.treated.to_numpy(), data.y.to_numpy(), data.p.to_numpy()

    def value(score: np.ndarray) -> float:
        return true_policy_value(score, effect, TOP)

    from lightgbm import LGBMRegressor

    keep = t.astype(bool)
    response = LGBMRegressor(**{**DEFAULT_PARAMS, "random_state": 0}).fit(x[keep], y[keep])
    oracle = value(effect)
    rows = {
        "oracle (true effect)": oracle,
        "response propensity": value(response.predict(x_now)),
        "random": float(effect.mean() * TOP),
        "everyone (per customer)": float(effect.mean()),
    }
    values = []
    for seed in range(args.seeds):
        model = fit(x, t, y, p_, trained["chosen"], seed=seed, features=features, bag=BAG)
        values.append(value(model.predict(x_now)))
    rows[f"uplift ({trained['chosen']}-learner), seed 0"] = values[0]
    print(
        f"{len(data):,} training rows from {len(trained['campaigns'])} campaigns, "
        f"{len(features)} features; frame {framed:.1f} s, compare + fit {seconds:.1f} s"
    )
    print(
        f"learners out of fold: {pd.DataFrame(trained['learners'])[['learner', 'auuc', 'policy_value_top']].to_string(index=False)}"
    )
    print(f"\npolicy value of treating the top {TOP:.0%} (true extra orders per customer):")
    for k, v in rows.items():
        print(f"  {k:32s} {v:.4f}  ({v / oracle:.1%} of the oracle)")
    arr = np.array(values)
    print(
        f"\nover {args.seeds} seeds: mean {arr.mean():.4f}, sd {arr.std(ddof=1):.5f} "
        f"({arr.std(ddof=1) / arr.mean():.2%} of the mean), min {arr.min():.4f}, "
        f"max {arr.max():.4f}"
    )


if __name__ == "__main__":
    main()
