"""Campaign decisions: config checks, holdouts, allocation against the optimum, and the
policy's promises held under random data and settings (hypothesis)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custintel.campaigns import allocate, delivery, holdout, rules
from custintel.campaigns.decide import Plan, decide
from custintel.core.config import parse_config
from custintel.core.errors import ConfigError

AS_OF = dt.date(2025, 6, 30)


def _plan(yaml: str, name: str = "c") -> Plan:
    cfg = parse_config(yaml)
    return Plan(name, cfg.campaigns[name], dict(cfg.offers), dict(cfg.channels), cfg.contact_policy)


def _customers(n: int, seed: int) -> pd.DataFrame:
    """Customers as another system would describe them: no simulator involved."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "customer_id": [f"K-{i:05d}" for i in rng.permutation(n)],
            "segment": rng.choice(["north", "south", "west"], n),
            "clv": rng.lognormal(3, 1, n),
            "score__churn_90d": np.where(rng.random(n) < 0.05, np.nan, rng.random(n)),
            "score__purchase_90d": rng.random(n),
            "tier__churn_90d": rng.choice(["high", "medium", "low"], n),
            "has_email": rng.random(n) < 0.8,
            "has_phone": rng.random(n) < 0.6,
            "has_postal": rng.random(n) < 0.7,
            "days_since_purchase": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 400, n)),
            "days_since_contact": np.where(rng.random(n) < 0.5, np.nan, rng.integers(0, 40, n)),
            "open_ticket": rng.random(n) < 0.05,
            "running_control": rng.random(n) < 0.05,
            "fatigue": rng.random(n) < 0.1,
        }
    )
    for ch in ("email", "sms", "post"):
        out[f"consent__{ch}"] = rng.random(n) < 0.9
        out[f"dnc__{ch}"] = rng.random(n) < 0.03
        for w, hi in (("day", 2), ("week", 3), ("month", 6)):
            out[f"sent__{ch}__{w}"] = rng.integers(0, hi, n)
    for w, hi in (("day", 2), ("week", 4), ("month", 8)):
        out[f"sent__all__{w}"] = rng.integers(0, hi, n)
    return out


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("campaigns: {c: {offers: [missing]}}", "no offer 'missing'"),
        ("offers: {o: {score: churn_90d, channels: [fax]}}", "no channel 'fax'"),
        ("offers: {o: {score: churn_90d, budget: 0.001}}", "below the cost of one contact"),
        (
            "offers: {o: {score: churn_90d}}\n"
            "campaigns: {a: {offers: [o]}, b: {offers: [o], control_group: a}}",
            "already the control group of campaign 'a'",
        ),
        ("offers: {o: {score: not_a_label}}", "not a label"),
        (
            "contact_policy: {overrides: [{customer_id: X, rule: consent, reason: vip}]}",
            "contact_policy.overrides.0.rule",
        ),
        (
            "contact_policy: {overrides: [{customer_id: X, rule: do_not_contact, reason: ''}]}",
            "contact_policy.overrides.0.reason",
        ),
        ("campaigns: {c: {offers: [o], audience: {deciles: [1]}}}", "name it with `score`"),
    ],
)
def test_bad_campaign_config_names_the_key(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml)


def test_a_condition_naming_an_unknown_column_fails_with_the_near_ones() -> None:
    plan = _plan(
        "offers: {o: {score: churn_90d}}\n"
        "campaigns: {c: {offers: [o], audience: {where: 'days_since_purchse > 30'}}}"
    )
    with pytest.raises(
        ConfigError, match=r"audience.where: no column 'days_since_purchse'.*days_since_purchase"
    ):
        decide(_customers(50, 0), plan, AS_OF)
    plan = _plan(
        "offers: {o: {score: churn_90d, eligible: 'clv >'}}\ncampaigns: {c: {offers: [o]}}"
    )
    with pytest.raises(ConfigError, match=r"offers\.o\.eligible"):
        decide(_customers(50, 0), plan, AS_OF)


# -- holdouts --------------------------------------------------------------------------


def test_holdout_units_are_stable_uniform_and_independent_across_groups() -> None:
    ids = np.array([f"C{i}" for i in range(100_000)])
    a, b = holdout.units("spring", ids), holdout.units("autumn", ids)
    assert np.array_equal(a, holdout.units("spring", ids[::-1])[::-1])
    assert abs((a < 0.1).mean() - 0.1) < 0.005
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02
    # a customer's membership does not depend on who else is there
    assert np.array_equal(holdout.units("spring", ids[:10]), a[:10])


def test_stratified_holdout_is_exact_per_stratum_and_frozen_thresholds_move_no_one() -> None:
    rng = np.random.default_rng(4)
    ids = np.array([f"C{i}" for i in range(30_000)])
    strata = rng.choice(["high", "medium", "low"], len(ids), p=[0.2, 0.3, 0.5])
    u = holdout.units("g", ids)
    frozen = holdout.thresholds(u, strata, 0.1)
    ctl = holdout.held_out(u, 0.1, strata, frozen)
    for s in ("high", "medium", "low"):
        share = ctl[strata == s].mean()
        assert abs(share - 0.1) <= 1 / (strata == s).sum() + 1e-12
    # more customers arrive: everyone already assigned keeps their group
    more = np.array([f"N{i}" for i in range(5_000)])
    u2 = np.r_[u, holdout.units("g", more)]
    s2 = np.r_[strata, rng.choice(["high", "medium", "low"], len(more))]
    assert np.array_equal(holdout.held_out(u2, 0.1, s2, frozen)[: len(ids)], ctl)


# -- allocation ------------------------------------------------------------------------


def _problem(n: int, offers: int, seed: int, budget: float) -> allocate.Problem:
    rng = np.random.default_rng(seed)
    cust = np.repeat(np.arange(n), offers)
    off = np.tile(np.arange(offers), n)
    value = rng.gamma(2, 5, n * offers) * rng.uniform(0.5, 1.5, offers)[off]
    cost = 1.0 + 0.3 * off + rng.random(n * offers)
    return allocate.Problem(
        customer=cust, offer=off, channel=np.zeros(n * offers, dtype=np.int64), value=value,
        cost=cost, control=np.zeros(n, dtype=bool), channel_caps=np.full((n, 1), 9),
        total_caps=np.full(n, 9), offer_budget=np.full(offers, budget),
        offer_inventory=np.full(offers, 10**18), channel_budget=np.array([np.inf]),
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_is_near_the_exact_optimum_and_the_bound_is_above_both(seed: int) -> None:
    p = _problem(600, 6, seed, budget=60.0)
    status = allocate.greedy(p)
    chosen = allocate.exact(p)
    assert chosen is not None
    greedy_value = p.value[status == 0].sum()
    best = p.value[chosen].sum()
    assert greedy_value <= best + 1e-6
    assert greedy_value >= 0.99 * best
    bound = allocate.bound(p)
    assert best - 1e-6 <= bound <= 1.01 * best  # the LP optimum: a little above, never below
    for o in range(6):
        assert p.cost[(status == 0) & (p.offer == o)].sum() <= 60.0 + 1e-9
        assert p.cost[chosen & (p.offer == o)].sum() <= 60.0 + 1e-6


# -- the policy's promises, whatever the data and settings ------------------------------

CONFIG = st.fixed_dictionaries(
    {
        "day": st.integers(0, 2),
        "week": st.integers(0, 4),
        "email_week": st.one_of(st.none(), st.integers(0, 3)),
        "budget": st.one_of(st.none(), st.floats(0.5, 200)),
        "offer_budget": st.one_of(st.none(), st.floats(0.5, 100)),
        "inventory": st.one_of(st.none(), st.integers(0, 300)),
        "per_customer": st.integers(1, 3),
        "holdout": st.floats(0, 0.5),
        "cooling": st.integers(0, 10),
        "opt_in": st.booleans(),
    }
)


def _policy_yaml(c: dict) -> str:
    email_caps = "" if c["email_week"] is None else f", email: {{week: {c['email_week']}}}"
    ob = "" if c["offer_budget"] is None else f", budget: {c['offer_budget']}"
    inv = "" if c["inventory"] is None else f", inventory: {c['inventory']}"
    cb = "" if c["budget"] is None else f", budget: {c['budget']}"
    return (
        f"contact_policy: {{caps: {{all: {{day: {c['day']}, week: {c['week']}}}{email_caps}}}, "
        f"cooling_off_days: {c['cooling']}, "
        f"overrides: [{{customer_id: K-00001, rule: do_not_contact, reason: service notice}}]}}\n"
        "offers:\n"
        f"  a: {{score: churn_90d, channels: [email, sms], cost_per_response: 2{ob}{inv}}}\n"
        "  b: {score: purchase_90d, value: 30, channels: [email, post], eligible: 'clv > 5'}\n"
        f"campaigns: {{c: {{offers: [a, b], holdout: {c['holdout']}, "
        f"actions_per_customer: {c['per_customer']}{cb}}}}}\n"
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=CONFIG, seed=st.integers(0, 10_000), n=st.integers(1, 400))
def test_no_decision_breaks_the_policy(c: dict, seed: int, n: int) -> None:
    plan = _plan(_policy_yaml(c))
    frame = _customers(n, seed)
    out = decide(frame, plan, AS_OF)
    d = out.decisions
    # everyone has a decision: actions, or one excluded row with its rule among its rules
    assert set(d.customer_id) == set(frame.customer_id)
    excluded = d[d.outcome == "excluded"]
    assert not excluded.customer_id.duplicated().any()
    assert not set(excluded.customer_id) & set(d.loc[d.outcome != "excluded", "customer_id"])
    assert all(r in rs.split(",") for r, rs in zip(excluded.rule, excluded.rules, strict=True))
    acts = d[d.outcome != "excluded"].merge(frame, on="customer_id")
    treated = acts[acts.outcome == "treatment"]
    # consent: an opt-out always wins; do-not-contact unless overridden with a reason
    for ch in ("email", "sms", "post"):
        on = acts[acts.channel == ch]
        assert on[f"consent__{ch}"].all()
        assert (~on[f"dnc__{ch}"] | (on.customer_id == "K-00001")).all()
    need = {"email": "has_email", "sms": "has_phone", "post": "has_postal"}
    assert all(acts.loc[acts.channel == ch, col].all() for ch, col in need.items())
    assert not acts.running_control.any() and not acts.open_ticket.any()
    assert not (acts.days_since_contact < c["cooling"]).any()
    # caps: history plus this run's actions (fatigue only lowers them)
    per = acts.groupby("customer_id").size()
    hist = frame.set_index("customer_id")
    assert (per <= c["per_customer"]).all()
    assert (hist.loc[per.index, "sent__all__day"] + per <= c["day"]).all()
    assert (hist.loc[per.index, "sent__all__week"] + per <= c["week"]).all()
    if c["email_week"] is not None:
        em = acts[acts.channel == "email"].groupby("customer_id").size()
        assert (hist.loc[em.index, "sent__email__week"] + em <= c["email_week"]).all()
    # budgets and stock: never over, counting the treated only
    if c["budget"] is not None:
        assert treated.cost.sum() <= c["budget"] + 1e-9
    if c["offer_budget"] is not None:
        assert treated.loc[treated.offer == "a", "cost"].sum() <= c["offer_budget"] + 1e-9
    if c["inventory"] is not None:
        assert (treated.offer == "a").sum() <= c["inventory"]
    assert (acts.loc[acts.offer == "b", "clv"] > 5).all()
    # nothing leaves that the decision log did not treat: contact history, files, webhooks
    contacts = delivery.contact_rows(d, "c", "c", AS_OF, "run")
    out_now = delivery.deliverable(contacts).assign(
        email=lambda f: f.customer_id.str.lower() + "@example.com", phone="+44 7700 900123",
        first_name="A", last_name="B", address="1 St", postcode="AB1", city="X",
    )  # fmt: skip
    allowed = set(treated.customer_id)
    for ch, part in out_now.groupby("channel"):
        sent = {c for b in delivery.batches(part, "c", str(AS_OF), str(ch), 7) for c in b.customers}
        assert sent == set(treated.loc[treated.channel == ch, "customer_id"]) and sent <= allowed
        for fmt in ("email_platform", "sms_platform", "mail_house"):
            assert set(delivery.export_frame(part, fmt, "c", "GB").customer_id) <= allowed
        hashed = delivery.export_frame(part, "meta_custom_audience", "c", "GB")
        assert len(hashed) == len(part) and not hashed.email.str.contains("@").any()
    assert not set(out_now.customer_id) & set(excluded.customer_id)
    # every candidate's rule mask agrees with the decision table
    cand = out.candidates
    assert (cand.failed >= 0).all() and (cand.failed < 1 << len(rules.RULES)).all()


def test_decisions_do_not_depend_on_row_order_and_rerun_identically() -> None:
    plan = _plan(
        "offers: {o: {score: churn_90d, channels: [email, sms], budget: 40}}\n"
        "campaigns: {c: {offers: [o], holdout: 0.2, stratify: tier}}"
    )
    frame = _customers(3_000, 5)
    a = decide(frame, plan, AS_OF)
    b = decide(frame.sample(frac=1, random_state=1), plan, AS_OF, frozen=a.thresholds)
    pd.testing.assert_frame_equal(a.decisions, b.decisions)
    chosen = a.decisions[a.decisions.outcome != "excluded"]
    share = (chosen.outcome == "control").mean()
    assert abs(share - 0.2) < 0.005 + 3 / len(chosen)


def test_targeting_spends_a_budget_on_the_highest_value() -> None:
    """Under a budget the chosen actions carry more value per contact than the rest."""
    plan = _plan(
        "offers: {o: {score: churn_90d, channels: [email]}}\n"
        "campaigns: {c: {offers: [o], holdout: 0, budget: 5}}\n"
        "contact_policy: {caps: {}, cooling_off_days: 0, recent_purchase_days: 0}"
    )
    frame = _customers(2_000, 9).assign(running_control=False, open_ticket=False, fatigue=False)
    out = decide(frame, plan, AS_OF)
    d = out.decisions
    chosen = d[d.outcome == "treatment"]
    assert len(chosen) == 500  # 5 / 0.01 per e-mail
    rest = d[(d.outcome == "excluded") & (d.rule == "budget")]
    assert len(rest) > 0 and chosen.priority.min() >= rest.priority.max()
