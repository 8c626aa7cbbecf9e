"""A campaign on a real warehouse: the simulated shop's identities, consent history,
e-mail events, tickets and contacts; decisions checked against the consent service's
one-customer answer, the holdout design, re-runs, "why", and the command line."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from custintel.campaigns import holdout
from custintel.cli.main import app
from custintel.core.config import dump_config, load_config, parse_config
from custintel.core.consent import Record, decide
from custintel.core.errors import SourceError
from custintel.features.build import events_for
from custintel.pipeline.project import Project

AS_OF = dt.date(2025, 6, 30)

CAMPAIGNS = """
offers:
  voucher: {score: churn_90d, value: 40, channels: [email, sms], cost_per_response: 2}
  points: {score: churn_90d, value: 40, uplift: 0.5, channels: [email], eligible: 'purchase_count >= 2'}
campaigns:
  winback:
    offers: [voucher, points]
    audience: {score: churn_90d, deciles: [1, 2, 3, 4, 5]}
    holdout: 0.2
    stratify: tier
    budget: 3000
contact_policy:
  do_not_contact: [dnc.csv]
  global_control: {share: 0.02}
"""


@pytest.fixture(scope="module")
def shop(resolved_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The resolved shop with a stand-in churn score (any model's scores would do: the
    campaign only reads ``scores.<label>``), a do-not-contact list and a campaign."""
    project = tmp_path_factory.mktemp("campaign") / "shop"
    shutil.copytree(resolved_shop, project)
    cfg = load_config(project)
    extra = parse_config(CAMPAIGNS)
    cfg = cfg.model_copy(
        update={k: getattr(extra, k) for k in ("offers", "campaigns", "contact_policy")}
    )
    (project / "custintel.yaml").write_text(dump_config(cfg), encoding="utf-8")
    with Project.open(project) as p:
        wh = p.warehouse
        ids = wh.table("customer", "profile").execute().customer_id.sort_values().to_numpy()
        score = holdout.units("stand-in model", ids)
        order = np.argsort(-score, kind="stable")
        decile = np.empty(len(ids), dtype=int)
        decile[order] = np.arange(len(ids)) * 10 // len(ids) + 1
        tier = np.where(decile <= 2, "high", np.where(decile <= 5, "medium", "low"))
        wh.ensure_schema("scores")
        wh.put("scores", "churn_90d", pd.DataFrame({
            "customer_id": ids, "as_of": AS_OF, "score": score, "decile": decile,
            "tier": tier, "reasons": "[]", "model_version": 1,
        }))  # fmt: skip
    dnc = pd.DataFrame(
        {
            "customer_id": ids[:300],
            "channel": ["all"] * 100 + ["email"] * 200,
            "until": [""] * 150 + ["2025-01-01"] * 150,  # half of the e-mail ones expired
            "reason": "asked",
        }
    )
    dnc.to_csv(project / "dnc.csv", index=False)
    with Project.open(project) as p:
        plan = p.campaign_plan("winback", AS_OF)
        first = p.campaign_run("winback", AS_OF)
        d1 = p.warehouse.table("campaign", "decisions").execute()
        again = p.campaign_run("winback", AS_OF)
        d2 = p.warehouse.table("campaign", "decisions").execute()
        contacts = p.warehouse.table("campaign", "contacts").execute()
        events, _ = events_for(p.warehouse, p.config)
        consents = events.consents.execute()
        unsub = events.emails.filter(events.emails.event_type == "unsubscribe").execute()
    return {"project": project, "plan": plan, "first": first, "again": again, "d1": d1,
            "d2": d2, "contacts": contacts, "consents": consents, "unsub": unsub,
            "dnc": dnc}  # fmt: skip


def test_plan_equals_run_and_a_rerun_moves_no_one(shop: dict[str, Any]) -> None:
    keys = ("treatment", "control", "excluded", "excluded_by", "expected_value", "spend")
    assert {k: shop["plan"][k] for k in keys} == {k: shop["first"][k] for k in keys}
    cols = ["customer_id", "outcome", "offer", "channel", "rule", "rules"]
    a = shop["d1"][cols].sort_values(cols[:4], na_position="first", ignore_index=True)
    b = shop["d2"][cols].sort_values(cols[:4], na_position="first", ignore_index=True)
    pd.testing.assert_frame_equal(a, b)  # replaced, not added; same people, same groups
    assert shop["first"]["treatment"] > 1000 and shop["first"]["spend"] <= 3000


def test_every_action_has_consent_by_the_one_customer_answer(shop: dict[str, Any]) -> None:
    acts = shop["d2"][shop["d2"].outcome != "excluded"]
    refused = shop["d2"][shop["d2"].rule == "consent"]
    assert len(refused) > 0
    history: dict[str, list[Record]] = {}
    for r in shop["consents"].itertuples():
        history.setdefault(r.customer_id, []).append(
            Record(r.ts.to_pydatetime(), r.channel, r.purpose, r.status)
        )
    for r in shop["unsub"].itertuples():
        history.setdefault(r.customer_id, []).append(
            Record(r.ts.to_pydatetime(), "email", "marketing", "withdrawn")
        )
    for row in acts.itertuples():
        answer = decide(history.get(row.customer_id, []), AS_OF, "marketing", row.channel)
        assert answer.allowed, (row.customer_id, row.channel, answer.reason)
    for row in refused.head(200).itertuples():
        answers = [
            decide(history.get(row.customer_id, []), AS_OF, "marketing", ch).allowed
            for ch in ("email", "sms")
        ]
        assert not all(answers)


def test_do_not_contact_and_the_global_control_hold(shop: dict[str, Any]) -> None:
    d = shop["d2"]
    acts = d[d.outcome != "excluded"]
    dnc = shop["dnc"]
    blocked_all = set(dnc.customer_id[:100])
    blocked_email = set(dnc.customer_id[100:150])
    expired = set(dnc.customer_id[150:])
    assert not blocked_all & set(acts.customer_id)
    assert not blocked_email & set(acts.loc[acts.channel == "email", "customer_id"])
    assert expired & set(acts.loc[acts.channel == "email", "customer_id"])
    gc = holdout.units("global", d.customer_id.unique()) < 0.02
    assert not set(d.customer_id.unique()[gc]) & set(acts.customer_id)


def test_holdout_is_exact_per_tier_and_recorded_in_the_contact_history(
    shop: dict[str, Any],
) -> None:
    d = shop["d2"]
    with Project.open(shop["project"], read_only=True) as p:
        tiers = p.warehouse.table("scores", "churn_90d").execute().set_index("customer_id").tier
        frozen = p.warehouse.table("campaign", "holdouts").execute()
    assert sorted(frozen.stratum) == ["high", "medium"]  # deciles 1-5: no low tier
    # exact among those who passed the policy (the thresholds' population) ...
    selection = {"arbitration", "frequency_cap_in_run", "budget", "inventory"}
    passed = d[(d.outcome != "excluded") | d.rule.isin(selection)].drop_duplicates("customer_id")
    u = holdout.units("winback", passed.customer_id.to_numpy())
    for tier, group in passed.groupby(passed.customer_id.map(tiers).to_numpy()):
        share = (
            u[group.index.map(passed.index.get_loc)] <= frozen.set_index("stratum").threshold[tier]
        ).mean()
        assert abs(share - 0.2) <= 1 / len(group) + 1e-9, tier
    # ... and within half a point among those the budget then chose
    chosen = d[d.outcome != "excluded"].drop_duplicates("customer_id")
    for tier, group in chosen.groupby(chosen.customer_id.map(tiers).to_numpy()):
        assert abs((group.outcome == "control").mean() - 0.2) < 0.005, tier
    c = shop["contacts"]
    assert len(c) == len(d[d.outcome != "excluded"])
    assert set(c.variant) == {"treatment", "control"}
    assert (pd.to_datetime(c.send_at, utc=True).dt.date == AS_OF).all()


def test_why_names_every_rule_and_the_cli_plan_writes_nothing(shop: dict[str, Any], runner) -> None:
    d = shop["d2"]
    one = d[(d.outcome == "excluded") & (d.rule != "audience")].iloc[0]
    with Project.open(shop["project"], read_only=True) as p:
        why = p.campaign_why("winback", one.customer_id)
        before = p.warehouse.count("campaign", "decisions")
    assert why["outcome"][0]["rule"] == one.rule
    failed = {r for c in why["candidates"] for r in c["failed"]}
    assert failed == set(one.rules.split(","))
    assert json.loads(d.model_versions.iloc[0])["churn_90d"] == 1
    out = runner.invoke(
        app,
        ["campaign", "plan", "winback", "--project", str(shop["project"]), "--as-of",
         str(AS_OF), "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    with Project.open(shop["project"], read_only=True) as p:
        assert p.warehouse.count("campaign", "decisions") == before
    out = runner.invoke(app, ["campaign", "plan", "nope", "--project", str(shop["project"]),
                              "--as-of", str(AS_OF)])  # fmt: skip
    assert out.exit_code != 0 and "no campaign 'nope'" in out.output


def test_a_bad_do_not_contact_file_names_the_line(shop: dict[str, Any], tmp_path: Path) -> None:
    from custintel.pipeline.campaign_context import do_not_contact

    (tmp_path / "dnc.csv").write_text("customer_id,channel,until\nA,email,\nB,all,31/12/2025\n")
    with pytest.raises(SourceError, match=r"dnc.csv:3: column until: '31/12/2025'"):
        do_not_contact(tmp_path, ["dnc.csv"], AS_OF)
    with pytest.raises(SourceError, match="does not exist"):
        do_not_contact(tmp_path, ["missing.csv"], AS_OF)
