"""``custintel simulate``: draw a retailer and write its source files and its truth.

Pure generation lives in ``population``, ``purchases`` and ``identities``; this module
turns their frames into what a marketing team would receive (each system with its own
ids, column names, date formats and delimiter) plus ``truth/`` for the tests, which the
pipeline never reads. Files are written through DuckDB so that millions of rows leave
quickly and byte-identically for the same seed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from custintel.core.config import CsvOptions, ProjectConfig, SourceConfig
from custintel.simulate.identities import Noise, draw_identities, source_records
from custintel.simulate.population import PERSONAS, draw_people
from custintel.simulate.purchases import Calendar, draw_purchases

CATEGORIES = ("apparel", "shoes", "home", "beauty", "electronics", "toys", "garden", "books")
PROFILES = {  # system -> (folder, contract column -> the system's own column name)
    "crm": (
        "crm",
        {
            "source_id": "CustomerNo",
            "first_name": "FirstName",
            "last_name": "LastName",
            "email": "EMail",
            "phone": "Mobile",
            "address": "Street",
            "postcode": "PostCode",
            "city": "Town",
            "birth_date": "DOB",
            "created_at": "created",
        },
    ),
    "webshop": (
        "shop",
        {
            "source_id": "account_id",
            "first_name": "given_name",
            "last_name": "family_name",
            "email": "email",
            "phone": "phone",
            "address": "address_line",
            "postcode": "zip",
            "city": "city",
            "birth_date": "birthday",
            "created_at": "created",
        },
    ),
    "loyalty": (
        "loyalty",
        {
            "source_id": "card_no",
            "first_name": "firstname",
            "last_name": "surname",
            "email": "mail",
            "phone": "mobile",
            "address": "street",
            "postcode": "postcode",
            "city": "town",
            "birth_date": "born",
            "created_at": "created",
        },
    ),
}


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
    protected_effect: float = 0.0
    seasonal: bool = True

    @property
    def as_of(self) -> date:
        return self.start + timedelta(weeks=self.history_weeks)

    @property
    def days(self) -> int:
        return 7 * (self.history_weeks + self.future_weeks)


def _copy(frame: pd.DataFrame, path: Path, *, delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute(f"COPY frame TO '{path}' (HEADER, DELIMITER '{delimiter}')")
    con.close()


def _timestamps(start: date, weeks: np.ndarray) -> pd.Series:
    return pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.round(weeks * 7 * 86400), unit="s")


def simulate(out: Path, config: SimulationConfig | None = None) -> dict[str, int]:
    """Write the source files under ``out`` and the truth under ``out/truth``."""
    cfg = config or SimulationConfig()
    rng = np.random.default_rng(cfg.seed)
    people = draw_people(
        cfg.customers,
        rng,
        history_weeks=float(cfg.history_weeks),
        protected_effect=cfg.protected_effect,
    )
    events, lifetimes = draw_purchases(people, Calendar(cfg.start, cfg.days, cfg.seasonal), rng)
    identities = draw_identities(people, rng, household_share=cfg.household_share)
    records, record_truth = source_records(identities, rng, Noise())

    # Which account each purchase is booked on: online purchases go to a web-shop account
    # (a guest checkout when the person has none), store purchases to a loyalty card when
    # the person has one (else anonymous).
    online_share = dict((p.name, p.online_share) for p in PERSONAS)
    person_persona = people.persona.to_numpy()[events.person_id.to_numpy()]
    online = rng.random(len(events)) < pd.Series(person_persona).map(online_share).to_numpy()
    first_account = record_truth.drop_duplicates(["system", "person_id"]).set_index(
        ["system", "person_id"]
    )
    pid = events.person_id.to_numpy()
    shop_ref = first_account.loc["webshop"].source_id.reindex(pid).to_numpy()
    card_ref = first_account.loc["loyalty"].source_id.reindex(pid).to_numpy()
    ts = _timestamps(cfg.start, events.week.to_numpy())
    category = np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), size=len(events))]
    orders = pd.DataFrame(
        {
            "order_id": [f"O{i:09d}" for i in range(len(events))],
            "person_id": pid,
            "channel": np.where(online, "online", "store"),
            "account": np.where(online, shop_ref, card_ref),
            "ts": ts,
            "amount": events.spend.to_numpy(),
            "category": category,
            "quantity": rng.integers(1, 5, size=len(events)),
        }
    )
    shop = orders[orders.channel == "online"]
    store = orders[orders.channel == "store"]
    _copy(
        pd.DataFrame(
            {
                "order_no": shop.order_id,
                "account_id": shop.account,
                "created": shop.ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "total": shop.amount.map("{:.2f}".format),
                "currency": cfg.currency,
                "category": shop.category,
                "items": shop.quantity,
            }
        ),
        out / "shop" / "orders.csv",
    )
    _copy(
        pd.DataFrame(
            {
                "receipt": store.order_id,
                "card": store.account,
                "sold_at": store.ts.dt.tz_convert("Europe/London").dt.strftime("%d/%m/%Y %H:%M:%S"),
                "gross": store.amount.map("{:.2f}".format),
                "dept": store.category,
                "qty": store.quantity,
            }
        ),
        out / "store" / "sales.csv",
        delimiter=";",
    )
    first_seen = orders.groupby("person_id").ts.min()
    for system, frame in records.items():
        person = record_truth[record_truth.system == system].person_id.to_numpy()
        created = first_seen.reindex(person).to_numpy()
        folder, columns = PROFILES[system]
        frame = frame.drop(columns=["landline"] if system != "crm" else []).rename(columns=columns)
        frame["created"] = pd.to_datetime(created, utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
        _copy(frame, out / folder / "customers.csv")
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    as_of_week = cfg.history_weeks
    future = orders.assign(week=events.week.to_numpy())
    people_truth = people.merge(lifetimes, on="person_id")
    people_truth["alive_at_as_of"] = people_truth.death_week > as_of_week
    for horizon in (90, 365):
        window = future[(future.week >= as_of_week) & (future.week < as_of_week + horizon / 7)]
        counts = window.groupby("person_id").agg(n=("order_id", "size"), spend=("amount", "sum"))
        people_truth[f"purchases_next_{horizon}d"] = counts.n.reindex(
            people_truth.person_id, fill_value=0
        ).to_numpy()
        people_truth[f"spend_next_{horizon}d"] = counts.spend.reindex(
            people_truth.person_id, fill_value=0.0
        ).to_numpy()
    people_truth.to_parquet(truth / "people.parquet", index=False)
    record_truth.to_parquet(truth / "records.parquet", index=False)
    orders[["order_id", "person_id", "channel", "account"]].to_parquet(
        truth / "orders.parquet", index=False
    )
    summary = {"people": len(people), "records": len(record_truth), "orders": len(orders)}
    (truth / "simulation.json").write_text(
        json.dumps(
            {
                "config": cfg.model_dump(mode="json"),
                "as_of": str(cfg.as_of),
                "noise": asdict(Noise()),
                **summary,
            },
            indent=2,
            sort_keys=True,
        )
    )
    return summary


def simulation_sources(data_dir: str, currency: str = "GBP") -> dict[str, SourceConfig]:
    """Sources mapping the simulated files onto the contracts (paths relative to the project)."""
    d = data_dir.rstrip("/")
    profiles = {
        f"{folder}_customers": SourceConfig(
            contract="customers", system=system, path=f"{d}/{folder}/customers.csv", columns=columns
        )
        for system, (folder, columns) in PROFILES.items()
    }
    return {
        **profiles,
        "shop_orders": SourceConfig(
            contract="orders",
            system="webshop",
            path=f"{d}/shop/orders.csv",
            columns={
                "order_id": "order_no",
                "customer_ref": "account_id",
                "order_ts": "created",
                "amount": "total",
                "quantity": "items",
            },
            constants={"channel": "online"},
        ),
        "store_orders": SourceConfig(
            contract="orders",
            system="loyalty",
            path=f"{d}/store/sales.csv",
            csv=CsvOptions(delimiter=";"),
            columns={
                "order_id": "receipt",
                "customer_ref": "card",
                "order_ts": "sold_at",
                "amount": "gross",
                "category": "dept",
                "quantity": "qty",
            },
            constants={"channel": "store"},
            currency=currency,
            timestamp_format="%d/%m/%Y %H:%M:%S",
            timezone="Europe/London",
        ),
    }


def simulation_config(data_dir: str, name: str, currency: str = "GBP") -> ProjectConfig:
    return ProjectConfig(name=name, sources=simulation_sources(data_dir, currency))
