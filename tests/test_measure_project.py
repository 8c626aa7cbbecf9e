"""Measurement from the warehouse: the simulated shop's four past campaigns measured from
their ingested contact history and orders, against the simulator's truth; and every
reason a lift cannot be claimed, named."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from custintel.cli.main import app
from custintel.core.config import dump_config, load_config
from custintel.features.build import default_as_of
from custintel.measure.campaign import measure
from custintel.measure.lift import Metric, lift_table
from custintel.pipeline.project import Project
from custintel.pipeline.simulation import simulation_measurement
from custintel.simulate.campaigns import DEFAULT_CAMPAIGNS, Response

from .conftest import parse_json_output

SYSTEM_OF_CHANNEL = {"online": "webshop", "store": "loyalty"}


@pytest.fixture(scope="module")
def shop(resolved_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("measure") / "shop"
    shutil.copytree(resolved_shop, project)
    cfg = load_config(project)
    cfg = cfg.model_copy(update={"measurement": simulation_measurement(project / "data")})
    (project / "custintel.yaml").write_text(dump_config(cfg), encoding="utf-8")
    with Project.open(project) as p:
        names = p.measure_campaigns()
        results = {n: p.measure_campaign(n) for n in names}
        cmap = p.warehouse.table("identity", "customer_map").execute()
    return {"project": project, "results": results, "truth": _truth(project, cmap)}


def _truth(project: Path, cmap: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per past campaign, from the simulator's truth: the customers in each group (the
    customers the CRM records of the people targeted resolved to); the realized lift in the orders booked on records linked to the contacted
    customer (what the warehouse can see); and the true average effect on those orders
    (each person's expected change times the share of their orders so booked)."""
    truth_dir = project / "data" / "truth"
    ids = cmap.set_index(["source", "source_id"]).customer_id
    orders = pd.read_parquet(truth_dir / "orders.parquet")
    orders = orders[~orders.is_return]
    keys = pd.MultiIndex.from_arrays([orders.channel.map(SYSTEM_OF_CHANNEL), orders.account])
    orders["customer_id"] = ids.reindex(keys).to_numpy()
    t = pd.read_parquet(truth_dir / "campaigns.parquet")
    t = t[t.customer_ref.notna()].copy()
    keys = pd.MultiIndex.from_arrays([np.repeat("crm", len(t)), t.customer_ref])
    t["customer_id"] = ids.reindex(keys).to_numpy()
    mine = orders.merge(t[["person_id", "customer_id"]].drop_duplicates(), how="inner")
    share = mine.groupby("person_id").size() / orders.groupby("person_id").size()
    t["share"] = share.reindex(t.person_id).fillna(0.0).to_numpy()
    weeks = Response().effect_weeks
    out = {}
    for c in DEFAULT_CAMPAIGNS:
        tt = t[t.campaign_id == c.campaign_id]
        window = orders[(orders.week >= c.week) & (orders.week < c.week + weeks)]
        counts = window.groupby("customer_id").size().reindex(tt.customer_id, fill_value=0)
        frame = pd.DataFrame({"arm": tt.variant.to_numpy(), "o": counts.to_numpy(float)})
        realized = lift_table(frame, [Metric("o")]).iloc[0].lift
        out[c.campaign_id] = {
            "treatment": int(tt[tt.variant == "treatment"].customer_id.nunique()),
            "control": int(tt[tt.variant == "control"].customer_id.nunique()),
            "realized": float(realized),
            "effect": float((tt.expected_effect * tt.share).mean()),
        }
    return out


def test_every_past_campaign_is_found_and_its_groups_are_the_truths(
    shop: dict[str, Any],
) -> None:
    results, truth = shop["results"], shop["truth"]
    assert list(results) == [c.campaign_id for c in DEFAULT_CAMPAIGNS]  # oldest first
    for name, m in results.items():
        t = truth[name]
        # Customers whose merged CRM records were in both groups are left out.
        for arm in ("treatment", "control"):
            assert m.counts[arm] == t[arm] - m.counts["conflicting"]
        assert not m.srm["mismatch"], (name, m.srm)
        assert m.status == "measured", (name, m.reason)


def test_measured_lift_is_the_realized_one_and_covers_the_true_effect(
    shop: dict[str, Any],
) -> None:
    for name, m in shop["results"].items():
        t = shop["truth"][name]
        raw = m.lift[(m.lift.metric == "orders") & ~m.lift.cuped].iloc[0]
        # The warehouse path (ingest, identity, windows) sees what the truth says it should:
        # only the few quarantined order rows differ.
        assert raw.lift == pytest.approx(t["realized"], abs=0.01), name
        assert raw.low <= t["effect"] <= raw.high, (name, raw.low, raw.high, t["effect"])
        cuped = m.lift[(m.lift.metric == "orders") & m.lift.cuped].iloc[0]
        assert cuped.high - cuped.low < raw.high - raw.low
        assert cuped.variance_reduction > 0.05


def test_results_are_recorded_and_the_report_has_a_page(shop: dict[str, Any], runner) -> None:
    project = shop["project"]
    with Project.open(project) as p:
        wh = p.warehouse
        summary = wh.table("measure", "campaigns").execute()
        curves = wh.table("measure", "curves").execute()
    assert set(summary.campaign_id) == set(shop["results"])
    assert (summary.status == "measured").all()
    last = curves[curves.day == curves.day.max()]
    assert (last.converted > 0).all() and (last.converted < 1).all()
    result = runner.invoke(app, ["report", "--project", str(project)])
    assert result.exit_code == 0, result.output
    page = (project / "reports" / "measurement.html").read_text()
    for name in shop["results"]:
        assert name in page
    assert "with CUPED" in page and "days since the send" in page


def test_cli_measures_a_shorter_window_as_json(shop: dict[str, Any], runner) -> None:
    project = shop["project"]
    args = ["measure", "campaign", "CMP-2024-WIN", "--project", str(project), "--window", "2w"]
    out = parse_json_output(runner.invoke(app, [*args, "--json"]).stdout)
    assert out["status"] == "measured"
    orders = next(r for r in out["lift"] if r["metric"] == "orders" and not r["cuped"])
    four = shop["results"]["CMP-2024-WIN"].lift
    four = four[(four.metric == "orders") & ~four.cuped].iloc[0]
    assert 0 < orders["lift"] < four.lift  # half the window, part of the effect
    bad = runner.invoke(app, [*args[:-1], "fortnight"])
    assert bad.exit_code != 0 and "--window" in bad.output


def _contacts(project: Path, campaign: str, frame: pd.DataFrame) -> None:
    """Add a campaign to the project's own contact history."""
    with Project.open(project) as p:
        wh = p.warehouse
        wh.ensure_schema("campaign")
        wh.put("campaign", "contacts", frame.assign(campaign_id=campaign), append=True)


def _customers(project: Path) -> pd.DataFrame:
    with Project.open(project) as p:
        wh = p.warehouse
        o = wh.sql(
            "SELECT m.customer_id, count(*) AS n FROM clean.orders o JOIN identity.customer_map "
            "m ON o.source = m.source AND o.customer_ref = m.source_id "
            "WHERE o.order_ts < TIMESTAMP '2024-09-01' GROUP BY 1 ORDER BY 1"
        ).df()
    return o


def test_every_reason_a_lift_cannot_be_claimed_is_named(
    shop: dict[str, Any], tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    shutil.copytree(shop["project"], project)
    buyers = _customers(project)
    rng = np.random.default_rng(0)
    base = pd.DataFrame(
        {
            "customer_id": buyers.customer_id,
            "offer": "voucher",
            "channel": "email",
            "control_group": "x",
            "send_weekday": 0,
            "as_of": pd.Timestamp("2024-09-02").date(),
            "run_id": "test",
        }
    )
    sent = pd.Timestamp("2024-09-02 09:00", tz="UTC")
    with Project.open(project) as p:
        today = default_as_of(p.warehouse, p.config)
    random_variant = np.where(rng.random(len(base)) < 0.2, "control", "treatment")
    cases = {
        "no_control": base.assign(variant="treatment", send_at=sent),
        "open_window": base.assign(
            variant=random_variant, send_at=pd.Timestamp("2026-07-20 09:00", tz="UTC")
        ),
        # The heaviest buyers held out: the arms differ before the send.
        "rigged": base.assign(
            variant=np.where(buyers.n >= buyers.n.quantile(0.8), "control", "treatment"),
            send_at=sent,
        ),
        "lopsided": base.assign(variant=random_variant, send_at=sent),
        # Decided as of the date the data runs to: nothing recorded can be its outcome.
        "just_decided": base.assign(variant=random_variant, send_at=sent, as_of=today),
    }
    for name, frame in cases.items():
        _contacts(project, name, frame)
    cfg = load_config(project)
    m = cfg.measurement.model_copy(update={"control_shares": {"lopsided": 0.5}})
    cfg = cfg.model_copy(update={"measurement": m})
    (project / "custintel.yaml").write_text(dump_config(cfg), encoding="utf-8")
    with Project.open(project) as p:
        got = {n: p.measure_campaign(n) for n in cases}
    assert got["no_control"].status == "refused"
    assert "no control group" in got["no_control"].reason
    assert got["open_window"].status == "pending"
    assert "window closes on 2026-08-17" in got["open_window"].reason
    assert got["rigged"].status == "unclaimed"
    assert "arms differ before the send" in got["rigged"].reason
    assert got["lopsided"].status == "unclaimed"
    assert "sample-ratio mismatch" in got["lopsided"].reason
    assert got["just_decided"].status == "pending"
    assert f"decided as of {today}" in got["just_decided"].reason
    for m in got.values():
        assert "\n" not in m.reason and m.reason in m.sentence


def test_a_control_without_outcomes_claims_nothing() -> None:
    rng = np.random.default_rng(2)
    n = 2_000
    arm = np.where(rng.random(n) < 0.5, "control", "treatment")
    orders = np.where(arm == "control", 0.0, rng.poisson(0.3, n).astype(float))
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "arm": arm,
            "variant": arm,
            "channel": "email",
            "offer": "x",
            "orders": orders,
            "revenue": 20 * orders,
            "converted": (orders > 0).astype(float),
            "visits": 0.0,
            "pre_orders": 1.0,
            "pre_revenue": 20.0,
            "pre_converted": 1.0,
            "pre_visits": 0.0,
        }
    )
    m = measure("late", frame)
    assert m.status == "unclaimed" and "control group has no outcomes yet" in m.reason
