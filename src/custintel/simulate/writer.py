"""``custintel simulate``: draw a retailer and write its source files and its truth.

Pure generation lives in ``population``, ``purchases``, ``campaigns``, ``engagement``,
``identities`` and ``faults``; this module
turns their frames into what a marketing team would receive (each system with its own
ids, column names, date formats and delimiter) plus ``truth/`` for the tests, which the
pipeline never reads. Files are written through DuckDB so that millions of rows leave
quickly and byte-identically for the same seed.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from custintel.simulate import engagement as eng
from custintel.simulate.campaigns import DEFAULT_CAMPAIGNS, Campaign, Response, run_campaigns
from custintel.simulate.event_files import (
    write_consents,
    write_contacts,
    write_email,
    write_tickets,
    write_web,
)
from custintel.simulate.faults import (
    ABSURD_AMOUNT,
    FAULTS,
    FUTURE_WEEKS,
    UNKNOWN_CURRENCIES,
    Faults,
    plan_faults,
)
from custintel.simulate.identities import SYSTEMS, Noise, draw_identities, source_records
from custintel.simulate.layout import PROFILES, simulation_config, simulation_sources
from custintel.simulate.output import Formatter, Ids, lookup, per_person
from custintel.simulate.population import PERSONAS, draw_people
from custintel.simulate.purchases import (
    CATEGORIES,
    Calendar,
    category_affinities,
    draw_purchases,
    draw_returns,
    order_details,
)


class SimulationConfig(BaseModel):
    """Every knob of the simulator (docs/simulator.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: int = Field(default=50_000, ge=1)
    seed: int = 7
    start: date = date(2023, 7, 3)
    history_weeks: int = Field(default=104, ge=4, description="weeks before the as-of date")
    future_weeks: int = Field(default=56, ge=0, description="weeks after it, for labels")
    currency: str = "GBP"
    household_share: float = Field(default=0.2, ge=0, lt=1)
    shared_email: float = Field(
        default=0.25, ge=0, le=1, description="household joiners using the household's e-mail"
    )
    protected_effect: float = 0.0
    seasonal: bool = True
    systems: dict[str, float] = Field(default_factory=lambda: dict(SYSTEMS))
    noise: Noise = Field(default_factory=Noise)
    engagement: eng.Engagement = Field(default_factory=eng.Engagement)
    campaigns: tuple[Campaign, ...] = DEFAULT_CAMPAIGNS
    response: Response = Field(default_factory=Response)
    faults: Faults = Field(default_factory=Faults)

    @property
    def as_of(self) -> date:
        return self.start + timedelta(weeks=self.history_weeks)

    @property
    def days(self) -> int:
        return 7 * (self.history_weeks + self.future_weeks)

    @property
    def total_weeks(self) -> float:
        return float(self.history_weeks + self.future_weeks)


def simulate(out: Path, config: SimulationConfig | None = None) -> dict[str, int]:
    """Write the source files under ``out`` and the truth under ``out/truth``."""
    cfg = config or SimulationConfig()
    rng = np.random.default_rng(cfg.seed)
    calendar = Calendar(cfg.start, cfg.days, cfg.seasonal)
    people = draw_people(
        cfg.customers,
        rng,
        history_weeks=float(cfg.history_weeks),
        protected_effect=cfg.protected_effect,
    )
    n = len(people)
    events, lifetimes = draw_purchases(people, calendar, rng)
    death = lifetimes["death_week"].to_numpy()
    identities = draw_identities(
        people, rng, household_share=cfg.household_share, shared_email=cfg.shared_email
    )
    records, record_truth = source_records(identities, rng, cfg.noise, cfg.systems)

    # The CRM is the marketing system: its first record of a person carries their
    # newsletter subscription, consents, tickets and campaign contacts.
    crm_ref = per_person(record_truth, "crm", n)
    in_crm = ~pd.isna(crm_ref)
    crm_email = np.full(n, None, dtype=object)
    crm_email[in_crm] = (
        records["crm"].set_index("source_id").email.reindex(crm_ref[in_crm]).to_numpy()
    )
    has_email = in_crm & (crm_email != "")
    join = people["first_week"].to_numpy()
    subs = eng.subscriptions(join, death, has_email, cfg.total_weeks, cfg.engagement, rng)
    reachable_until = np.where(subs.subscribed, subs.stop_week, -np.inf)
    events, campaign_truth = run_campaigns(
        people, events, death, reachable_until, calendar, cfg.campaigns, cfg.response, rng
    )

    with Formatter(cfg.start) as fmt:
        # Profiles first, so their text columns are freed before the orders are built.
        # A profile is created with the person's first purchase.
        first_week = people["first_week"].to_numpy()
        for system in list(records):
            frame = records.pop(system)
            person = record_truth[record_truth.system == system].person_id.to_numpy()
            folder, columns = PROFILES[system]
            frame = frame.drop(columns=["landline"] if system != "crm" else []).rename(
                columns=columns
            )
            frame["created"] = first_week[person]
            fmt.write(
                frame,
                f"* REPLACE ({fmt.ts('created')} AS created)",
                out / folder / "customers.csv",
            )
            del frame
        (out / "truth").mkdir(parents=True, exist_ok=True)
        identities.to_parquet(out / "truth" / "identities.parquet", index=False)
        del identities
        orders, accounts = _orders(people, events, record_truth, cfg, rng)
        del events
        fault_truth = _write_orders(fmt, orders, accounts, out, cfg, rng)
        fmt.flush()  # the two big order files use both cores; let them finish first
        crm = Ids(crm_ref)
        email_count = write_email(
            fmt, people, subs, campaign_truth, death, crm, Ids(crm_email), out, cfg, rng
        )
        consent_count = write_consents(fmt, subs, crm, join, out, cfg, rng)
        ticket_count = write_tickets(fmt, crm, join, death, out, cfg, rng)
        web_count, cookies = write_web(fmt, people, orders, record_truth, death, out, cfg, rng)
        contact_count = write_contacts(fmt, campaign_truth, crm, out, cfg)

        truth = out / "truth"
        truth.mkdir(parents=True, exist_ok=True)
        people_truth = _people_truth(people, lifetimes, orders, calendar, cfg)
        people_truth.to_parquet(truth / "people.parquet", index=False)
        record_truth.to_parquet(truth / "records.parquet", index=False)
        columns = ("oid", "person", "online", "is_return", "week", "amount")
        fmt.write(
            {
                **{c: orders[c].to_numpy() for c in columns},
                "account": accounts.from_codes(orders.account.to_numpy()),
            },
            "'O' || lpad(CAST(oid AS VARCHAR), 9, '0') AS order_id, person AS person_id, "
            "CASE WHEN online THEN 'online' ELSE 'store' END AS channel, "
            "CAST(account AS VARCHAR) AS account, is_return, week, amount",
            truth / "orders.parquet",
            parquet=True,
        )
    fault_truth.to_parquet(truth / "faults.parquet", index=False)
    campaign_truth.assign(customer_ref=crm_ref[campaign_truth.person_id.to_numpy()]).to_parquet(
        truth / "campaigns.parquet", index=False
    )
    cookies.to_parquet(truth / "cookies.parquet", index=False)
    summary = {
        "people": n,
        "records": len(record_truth),
        "orders": len(orders),
        "order_rows": len(orders) + int((fault_truth.expected == "duplicate").sum()),
        "faulty_rows": len(fault_truth),
        "email_events": email_count,
        "consents": consent_count,
        "support_tickets": ticket_count,
        "web_events": web_count,
        "contacts": contact_count,
    }
    (truth / "simulation.json").write_text(
        json.dumps(
            {"config": cfg.model_dump(mode="json"), "as_of": str(cfg.as_of), **summary},
            indent=2,
            sort_keys=True,
        )
    )
    return summary


def _order_ids(oid: np.ndarray) -> np.ndarray:
    return np.char.add("O", np.char.zfill(oid.astype(str), 9))


def _orders(
    people: pd.DataFrame,
    events: pd.DataFrame,
    record_truth: pd.DataFrame,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, Ids]:
    """Purchases and returns, in time order, with the account each is booked on (a code
    into the returned ids; -1 for guests and anonymous store sales).

    Online purchases go to the person's web-shop account (a guest checkout when they have
    none), store purchases to their loyalty card (anonymous when they have none).
    """
    affinity = category_affinities(people, {p.name: p.favourites for p in PERSONAS}, rng)
    details = order_details(events, people, affinity, rng)
    returned = draw_returns(events, people, rng)
    person = events.person_id.to_numpy()
    week = events.week.to_numpy()
    amount = events.spend.to_numpy()
    r = np.flatnonzero(returned)
    back = week[r] + rng.uniform(2, 28, size=r.size) / 7
    inside = back < cfg.total_weeks
    r, back = r[inside], back[inside]
    frame = pd.DataFrame(
        {
            "person": np.concatenate([person, person[r]]),
            "week": np.concatenate([week, back]),
            "amount": np.concatenate(
                [amount, -np.round(amount[r] * rng.uniform(0.3, 1.0, size=r.size), 2)]
            ),
            "discount": np.concatenate([details.discount.to_numpy(), np.zeros(r.size)]),
            "online": np.concatenate([details.online.to_numpy(), details.online.to_numpy()[r]]),
            "category": np.concatenate(
                [details.category.to_numpy(), details.category.to_numpy()[r]]
            ),
            "quantity": np.concatenate(
                [details.quantity.to_numpy(), np.ones(r.size, dtype=np.int64)]
            ),
            "is_return": np.concatenate([np.zeros(person.size, bool), np.ones(r.size, bool)]),
        }
    )
    frame = frame.iloc[np.argsort(frame.week.to_numpy(), kind="stable")].reset_index(drop=True)
    n = len(people)
    accounts = np.concatenate(
        [per_person(record_truth, "webshop", n), per_person(record_truth, "loyalty", n)]
    )
    pid = frame.person.to_numpy()
    ids = Ids(accounts)
    frame["account"] = ids.code[np.where(frame.online.to_numpy(), pid, n + pid)]
    frame["oid"] = np.arange(len(frame), dtype=np.int64)
    return frame, ids


def _write_orders(
    fmt: Formatter,
    orders: pd.DataFrame,
    accounts: Ids,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Write the web-shop and store order files with faults; return the faulty lines."""
    truths = []
    for name, online in (("shop/orders.csv", True), ("store/sales.csv", False)):
        part = orders[orders.online.to_numpy() == online]
        has_currency = online
        rows, fault = plan_faults(
            len(part), part.is_return.to_numpy(), has_currency, cfg.faults, rng
        )
        week = part.week.to_numpy()[rows]
        amount = part.amount.to_numpy()[rows]

        def code(name: str, fault: np.ndarray = fault) -> np.ndarray:
            return fault == FAULTS.index(name)

        week[code("missing_timestamp")] = np.nan
        week[code("future_timestamp")] += FUTURE_WEEKS
        amount[code("negative_amount")] = -np.abs(amount[code("negative_amount")])
        amount[code("absurd_amount")] = ABSURD_AMOUNT
        currency = np.zeros(rows.size, dtype=np.int64)
        bad = code("unknown_currency")
        currency[bad] = 1 + rng.integers(0, len(UNKNOWN_CURRENCIES), size=int(bad.sum()))
        oid = part.oid.to_numpy()[rows]
        table = {  # straight from numpy to Arrow: no DataFrame copy of ten million rows
            "oid": oid,
            "account": accounts.from_codes(part.account.to_numpy()[rows]),
            "week": week,
            "amount": amount,
            "currency": lookup(currency, (cfg.currency, *UNKNOWN_CURRENCIES)),
            "category": lookup(part.category.to_numpy()[rows], CATEGORIES),
            "quantity": part.quantity.to_numpy()[rows],
            "discount": part.discount.to_numpy()[rows],
            "is_return": part.is_return.to_numpy()[rows],
            "malformed": code("malformed_line"),
        }
        del part
        if online:
            select = (
                "'O' || lpad(CAST(oid AS VARCHAR), 9, '0') AS order_no, "
                "coalesce(account, '') AS account_id, "
                f"{fmt.ts('week')} AS created, printf('%.2f', amount) AS total, "
                "CAST(currency AS VARCHAR) AS currency, CAST(category AS VARCHAR) AS category, "
                "quantity AS items, printf('%.2f', discount) AS discount, "
                "CASE WHEN is_return THEN 'true' ELSE 'false' END || "
                "CASE WHEN malformed THEN ',oops' ELSE '' END AS refund"
            )
            delimiter = ","
        else:
            select = (
                "'O' || lpad(CAST(oid AS VARCHAR), 9, '0') AS receipt, "
                "coalesce(account, '') AS card, "
                f"{fmt.ts('week', '%d/%m/%Y %H:%M:%S', 'Europe/London')} AS sold_at, "
                "printf('%.2f', amount) AS gross, CAST(category AS VARCHAR) AS dept, "
                "quantity AS qty, printf('%.2f', discount) AS markdown, "
                "CASE WHEN is_return THEN '1' ELSE '0' END || "
                "CASE WHEN malformed THEN ';oops' ELSE '' END AS is_refund"
            )
            delimiter = ";"
        fmt.write(table, select, out / name, delimiter=delimiter, raw=True)
        faulty = np.flatnonzero(fault >= 0)
        labels = np.array([*FAULTS, "duplicate"])
        truths.append(
            pd.DataFrame(
                {
                    "file": name,
                    "line": faulty + 2,  # the header is line 1
                    "order_id": _order_ids(oid[faulty]),
                    "fault": labels[fault[faulty]],
                    "expected": np.where(fault[faulty] == len(FAULTS), "duplicate", "quarantine"),
                }
            )
        )
    return pd.concat(truths, ignore_index=True)


def _people_truth(
    people: pd.DataFrame,
    lifetimes: pd.DataFrame,
    orders: pd.DataFrame,
    calendar: Calendar,
    cfg: SimulationConfig,
) -> pd.DataFrame:
    """Each person's latent parameters, state at the as-of date and future outcomes.

    For each horizon the realised purchases and spend, and the true probability of a
    purchase (``p_purchase_<h>d``; ``1 -`` it is the churn probability) and expected
    purchases given the latent state: alive people buy at rate ``lam`` in operational time
    and drop out after each purchase with probability ``p``, so
    ``P(no purchase) = exp(-lam * t)`` and ``E[purchases] = (1 - exp(-lam * p * t)) / p``.
    The ``..._given_history`` columns are the same probabilities for someone who knows
    each person's persona (the priors of ``lam`` and ``p``) but, like any model, only
    the purchases before the as-of date: the oracle a model can aim for.
    """
    truth = people.merge(lifetimes, on="person_id")
    as_of = float(cfg.history_weeks)
    truth["alive_at_as_of"] = truth.death_week > as_of
    cal_w, op_w = calendar.operational()
    buys = orders[~orders.is_return.to_numpy()]
    alive = truth.alive_at_as_of.to_numpy()
    lam, p = truth.lam.to_numpy(), truth.p.to_numpy()
    # What the best model could know: each person's persona (the Gamma and Beta priors of
    # lam and p) and the purchases before the as-of date, but not lam and p themselves.
    # The purchase process is BG/NBD in operational time, so with x repeat purchases, the
    # last t after the first, and T since the first: P(alive) = 1 / (1 + [x > 0] a / (b
    # + x - 1) ((alpha + T) / (alpha + t))^(r + x)), and given alive lam ~ Gamma(r + x,
    # alpha + T). No purchase yet: not a customer (NaN).
    priors = {q.name: (q.r, q.alpha, q.a, q.b) for q in PERSONAS}
    r_, alpha_, a_, b_ = (
        truth.persona.map({k: v[i] for k, v in priors.items()}).to_numpy(float) for i in range(4)
    )
    seen = buys[buys.week < as_of].groupby("person").week.agg(["size", "min", "max"])
    seen = seen.reindex(truth.person_id)
    x = seen["size"].to_numpy() - 1
    first = np.interp(np.nan_to_num(seen["min"].to_numpy()), cal_w, op_w)
    t_x = np.interp(np.nan_to_num(seen["max"].to_numpy()), cal_w, op_w) - first
    T = float(np.interp(as_of, cal_w, op_w)) - first
    odds = np.where(
        x > 0,
        a_ / np.maximum(b_ + x - 1, 1e-12) * ((alpha_ + T) / (alpha_ + t_x)) ** (r_ + x),
        0.0,
    )
    truth["p_alive_given_history"] = np.where(np.isnan(x), np.nan, 1 / (1 + odds))
    for horizon in (90, 365):
        end = as_of + horizon / 7
        span = float(np.interp(end, cal_w, op_w) - np.interp(as_of, cal_w, op_w))
        window = buys[(buys.week >= as_of) & (buys.week < end)]
        counts = window.groupby("person").agg(n=("oid", "size"), spend=("amount", "sum"))
        truth[f"purchases_next_{horizon}d"] = counts.n.reindex(
            truth.person_id, fill_value=0
        ).to_numpy()
        truth[f"spend_next_{horizon}d"] = counts.spend.reindex(
            truth.person_id, fill_value=0.0
        ).to_numpy()
        truth[f"p_purchase_{horizon}d"] = alive * (1 - np.exp(-lam * span))
        truth[f"expected_purchases_{horizon}d"] = alive * (1 - np.exp(-lam * p * span)) / p
        stay_quiet = ((alpha_ + T) / (alpha_ + T + span)) ** (r_ + x)
        truth[f"p_purchase_{horizon}d_given_history"] = truth.p_alive_given_history * (
            1 - stay_quiet
        )
    return truth


__all__ = ["PROFILES", "SimulationConfig", "simulate", "simulation_config", "simulation_sources"]
