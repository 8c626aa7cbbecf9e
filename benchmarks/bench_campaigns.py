"""A campaign on a million customers: decided, logged and exported, split by step.

    python benchmarks/bench_campaigns.py [--customers 1000000] [--offers 10]

Ten offers on three channels (e-mail, SMS and an ad audience), so 30 candidates per
customer: the contact policy's rules in order, a stratified holdout, the allocation under
a budget per offer and one per campaign (greedy with its priced pass, and its bound),
the decision log, the candidates and contact history written to a DuckDB warehouse, and
the export files (the ad audience hashed). The input is the customer context the
warehouse queries produce (addresses, consent, contact counts, scores, CLV), drawn at
random here; building it is the pipeline's part, measured with the stages before.
Peak memory is the process's whole peak (``ru_maxrss``), context included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.campaigns.decide import Plan, decide
from custintel.core.config import parse_config
from custintel.pipeline.project import Project, init_project

AS_OF = dt.date(2025, 6, 30)
CHANNELS = ("email", "sms", "ads")
LABELS = ("churn_90d", "purchase_90d", "high_value_90d", "response_spring")


def config_text(offers: int, customers: int) -> str:
    lines = ["offers:"]
    for i in range(offers):
        lines.append(
            f"  offer_{i}: {{score: {LABELS[i % len(LABELS)]}, value: clv, "
            f"channels: [email, sms, ads], cost_per_response: {0.5 + 0.3 * i:.1f}, "
            f"budget: {customers * 0.004:.0f}}}"
        )
    names = ", ".join(f"offer_{i}" for i in range(offers))
    lines += [
        "campaigns:",
        "  big:",
        f"    offers: [{names}]",
        "    holdout: 0.1",
        "    stratify: tier",
        f"    budget: {customers * 0.03:.0f}",
        "    audience: {where: 'clv > 0'}",
    ]
    return "\n".join(lines) + "\n"


def context(n: int, seed: int = 0) -> pd.DataFrame:
    """What :func:`custintel.pipeline.campaign_context.customer_context` returns."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("CU", np.char.zfill(np.arange(n).astype(str), 8)).astype(object)
    frame = {
        "customer_id": ids,
        "segment": rng.choice(["loyal", "new", "lapsing", "bargain", "dormant"], n),
        "clv": rng.gamma(1.5, 60, n),
        "has_email": rng.random(n) < 0.9,
        "has_phone": rng.random(n) < 0.6,
        "has_postal": rng.random(n) < 0.8,
        "days_since_contact": np.where(rng.random(n) < 0.5, rng.uniform(0, 60, n), np.nan),
        "days_since_purchase": np.where(rng.random(n) < 0.8, rng.uniform(0, 400, n), np.nan),
        "open_ticket": rng.random(n) < 0.01,
        "running_control": rng.random(n) < 0.02,
        "fatigue": rng.random(n) < 0.05,
        "send_hour": rng.integers(6, 22, n),
        "send_weekday": rng.choice(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], n),
    }
    rank = pd.Series(frame["clv"]).rank(ascending=False, method="first").to_numpy()
    frame["clv_decile"] = np.ceil(rank * 10 / n)
    for ch in CHANNELS:
        frame[f"consent__{ch}"] = rng.random(n) < 0.85
        frame[f"dnc__{ch}"] = rng.random(n) < 0.01
        for window, lam in (("day", 0.02), ("week", 0.3), ("month", 1.0)):
            frame[f"sent__{ch}__{window}"] = rng.poisson(lam / 3, n)
    for window in ("day", "week", "month"):
        frame[f"sent__all__{window}"] = sum(frame[f"sent__{ch}__{window}"] for ch in CHANNELS)
    for label in LABELS:
        score = rng.beta(2, 6, n)
        order = np.argsort(-score, kind="stable")
        decile = np.empty(n, dtype=np.int64)
        decile[order] = np.arange(n) * 10 // n + 1
        frame[f"score__{label}"] = score
        frame[f"decile__{label}"] = decile
        frame[f"tier__{label}"] = np.where(
            decile <= 2, "high", np.where(decile <= 5, "medium", "low")
        )
    return pd.DataFrame(frame)


def profile(ctx: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ctx)
    num = np.arange(n).astype(str)
    return pd.DataFrame(
        {
            "customer_id": ctx.customer_id,
            "first_name": rng.choice(["Anna", "Ben", "Clara", "David", "Elif"], n),
            "last_name": rng.choice(["Smith", "Jones", "Taylor", "Brown"], n),
            "email": np.char.add(np.char.add("person", num), "@example.com").astype(object),
            "phone": np.char.add("+4477009", np.char.zfill(num, 5)).astype(object),
            "address": "1 High Street",
            "postcode": "AB1 2CD",
            "city": "London",
            "first_seen": pd.Timestamp("2024-01-01", tz="UTC"),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--offers", type=int, default=10)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bench"
        extra = parse_config(config_text(a.offers, a.customers))
        init_project(folder)
        p = Project.open(folder)
        p.config = p.config.model_copy(
            update={"offers": extra.offers, "campaigns": extra.campaigns}
        )
        ctx = context(a.customers)
        p.warehouse.ensure_schema("customer")
        p.warehouse.put("customer", "profile", profile(ctx))
        plan = Plan("big", extra.campaigns["big"], dict(extra.offers), dict(p.config.channels),
                    p.config.contact_policy)  # fmt: skip
        decide(ctx.head(2000), plan, AS_OF)  # compile the allocation once
        steps: dict[str, float] = {}
        t = time.perf_counter()
        outcome = decide(ctx, plan, AS_OF)
        steps["decide (rules, holdout, allocation, bound, decision log frame)"] = (
            time.perf_counter() - t
        )
        t = time.perf_counter()
        p._write(plan, outcome, {}, AS_OF, "bench")
        steps["log (decisions, candidates, contacts, run into DuckDB)"] = time.perf_counter() - t
        t = time.perf_counter()
        delivered = p.campaign_deliver("big", AS_OF)
        steps["export (a file per channel, ad audience hashed)"] = time.perf_counter() - t
        counts = {k: p.warehouse.count("campaign", k) for k in ("decisions", "candidates")}
        p.close()
    s = outcome.summary
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{a.customers:,} customers x {a.offers} offers x {len(CHANNELS)} channels "
          f"({s['allocation']['candidates']:,} treated customers' candidates pass the policy)")  # fmt: skip
    for k, v in steps.items():
        print(f"  {k}: {v:.1f} s")
    print(f"  total: {sum(steps.values()):.1f} s; peak memory {peak:,.0f} MB")
    print(f"  treated {s['treatment']:,}, held out {s['control']:,}; logged "
          f"{counts['decisions']:,} decisions and {counts['candidates']:,} candidate rows; "
          f"allocation {s['allocation']['below_bound_pct']:.4f} % below its bound")  # fmt: skip
    for ch, d in delivered.items():
        print(f"  {ch}: {d['file']['rows']:,} rows in {d['file']['format']}")


if __name__ == "__main__":
    main()
