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
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from custintel.core.config import CsvOptions, ProjectConfig, SourceConfig
from custintel.simulate import engagement as eng
from custintel.simulate.campaigns import DEFAULT_CAMPAIGNS, Campaign, Response, run_campaigns
from custintel.simulate.faults import (
    ABSURD_AMOUNT,
    FAULTS,
    FUTURE_WEEKS,
    UNKNOWN_CURRENCIES,
    Faults,
    plan_faults,
)
from custintel.simulate.identities import SYSTEMS, Noise, draw_identities, source_records
from custintel.simulate.population import PERSONAS, draw_people
from custintel.simulate.purchases import (
    CATEGORIES,
    Calendar,
    category_affinities,
    draw_purchases,
    draw_returns,
    order_details,
)

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


def _copy(frame: pd.DataFrame, path: Path, *, delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute(f"COPY frame TO '{path}' (HEADER, DELIMITER '{delimiter}')")
    con.close()


class _Formatter:
    """Formats numeric frames into source files with DuckDB (fast, byte-stable).

    Weeks since the start become timestamps in SQL rather than in pandas, which keeps
    tens of millions of rows cheap to write. DuckDB writes one CSV on one core, so each
    file is written in a background thread while numpy draws the next one; at most
    ``ahead`` files wait, which bounds memory. Every file is complete and the same for the
    same input whatever the timing, so output stays byte-identical.
    """

    def __init__(self, start: date, ahead: int = 2) -> None:
        self.db = duckdb.connect()
        self.start = start
        self.ahead = ahead
        self.pool = ThreadPoolExecutor(max_workers=ahead)
        self.pending: list[Future[None]] = []

    def __enter__(self) -> _Formatter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.flush()
        finally:
            self.pool.shutdown(wait=True)

    def flush(self) -> None:
        """Wait until every file handed over is written (DuckDB's memory is freed)."""
        while self.pending:
            self.pending.pop(0).result()

    def ts(self, col: str, fmt: str = "%Y-%m-%dT%H:%M:%SZ", zone: str | None = None) -> str:
        value = (
            f"TIMESTAMP '{self.start}' + "
            f"to_microseconds(CAST(round({col} * 604800000000) AS BIGINT))"
        )
        if zone:
            value = f"timezone('{zone}', CAST({value} AS TIMESTAMPTZ))"
        return f"CASE WHEN isnan({col}) THEN '' ELSE strftime({value}, '{fmt}') END"

    def write(
        self,
        frame: pd.DataFrame | pa.Table | dict[str, Any],
        select: str,
        path: Path,
        *,
        delimiter: str = ",",
        raw: bool = False,
        parquet: bool = False,
    ) -> None:
        """``COPY (SELECT <select> FROM frame)``; ``raw`` writes values unquoted (the
        values are known to hold no delimiter, except a deliberately malformed line)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(frame, dict):  # numpy columns go to Arrow without a pandas copy
            frame = pa.table(
                {k: pa.array(v) if isinstance(v, pd.Categorical) else v for k, v in frame.items()}
            )
        elif isinstance(frame, pd.DataFrame):  # convert here, where the GIL is held anyway
            frame = pa.Table.from_pandas(frame, preserve_index=False)
        quote = ", QUOTE '', ESCAPE ''" if raw else ""
        options = "FORMAT parquet" if parquet else f"HEADER, DELIMITER '{delimiter}'{quote}"
        sql = f"COPY (SELECT {select} FROM frame) TO '{path}' ({options})"
        while len(self.pending) >= self.ahead:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._copy, frame, sql))

    def _copy(self, table: pa.Table, sql: str) -> None:
        con = self.db.cursor()  # a connection of its own per thread
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("frame", table)
            con.execute(sql)
        finally:
            con.close()


def _lookup(values: np.ndarray, names: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(values.astype(np.int64), categories=list(names))


def _choice(which: np.ndarray, values: tuple[str, ...]) -> pd.Categorical:
    """``values[which]`` as a categorical; ``values`` may repeat."""
    uniq, inverse = np.unique(np.array(values, dtype=str), return_inverse=True)
    return pd.Categorical.from_codes(inverse[which], categories=uniq)


class _Ids:
    """Per-person strings (ids, addresses; None or empty when missing), stored once as an
    Arrow array and gathered by integer codes: per-row Python strings are never built,
    which keeps tens of millions of rows cheap to hand to DuckDB."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=object)
        present = ~pd.isna(values)
        present[present] = values[present] != ""
        self.uniq, inverse = np.unique(values[present].astype(str), return_inverse=True)
        self.code = np.full(values.size, -1, dtype=np.int64)
        self.code[present] = inverse
        self.missing = ~present

        self.arrow = pa.array(self.uniq, type=pa.string())

    def take(self, index: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
        """``values[index]`` as an Arrow string array (a C++ gather, no Python strings),
        NULL where ``mask`` is False or the value is missing."""
        picked = self.code[index]
        if mask is not None:
            picked = np.where(mask, picked, -1)
        return self.from_codes(picked)

    def from_codes(self, codes: np.ndarray) -> pa.Array:
        """The strings of codes from ``self.code`` (-1: NULL)."""
        return self.arrow.take(pa.array(codes, mask=codes < 0))


def _per_person(record_truth: pd.DataFrame, system: str, n: int) -> np.ndarray:
    """The id of each person's first record in ``system`` (None when they have none)."""
    first = record_truth[record_truth.system == system].drop_duplicates("person_id")
    ids = np.full(n, None, dtype=object)
    ids[first.person_id.to_numpy()] = first.source_id.to_numpy()
    return ids


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
    crm_ref = _per_person(record_truth, "crm", n)
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

    with _Formatter(cfg.start) as fmt:
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
        crm = _Ids(crm_ref)
        email_count = _write_email(
            fmt, people, subs, campaign_truth, death, crm, _Ids(crm_email), out, cfg, rng
        )
        consent_count = _write_consents(fmt, subs, crm, join, out, cfg, rng)
        ticket_count = _write_tickets(fmt, crm, join, death, out, cfg, rng)
        web_count, cookies = _write_web(fmt, people, orders, record_truth, death, out, cfg, rng)
        contact_count = _write_contacts(fmt, campaign_truth, crm, out, cfg)

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
) -> tuple[pd.DataFrame, _Ids]:
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
        [_per_person(record_truth, "webshop", n), _per_person(record_truth, "loyalty", n)]
    )
    pid = frame.person.to_numpy()
    ids = _Ids(accounts)
    frame["account"] = ids.code[np.where(frame.online.to_numpy(), pid, n + pid)]
    frame["oid"] = np.arange(len(frame), dtype=np.int64)
    return frame, ids


def _write_orders(
    fmt: _Formatter,
    orders: pd.DataFrame,
    accounts: _Ids,
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
            "currency": _lookup(currency, (cfg.currency, *UNKNOWN_CURRENCIES)),
            "category": _lookup(part.category.to_numpy()[rows], CATEGORIES),
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


def _write_email(
    fmt: _Formatter,
    people: pd.DataFrame,
    subs: pd.DataFrame,
    campaign_truth: pd.DataFrame,
    death: np.ndarray,
    crm: _Ids,
    emails: _Ids,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> int:
    """Newsletter and campaign e-mail events, keyed by the CRM customer number."""
    open_rate = people["open_rate"].to_numpy()
    news = eng.newsletter_events(subs, death, open_rate, cfg.engagement, rng)
    parts = [news.assign(campaign=np.int8(-1))]
    ids = tuple(c.campaign_id for c in cfg.campaigns)
    for i, campaign in enumerate(cfg.campaigns):
        if campaign.channel != "email":
            continue
        ct = campaign_truth[
            (campaign_truth.campaign_id == campaign.campaign_id)
            & (campaign_truth.variant == "treatment")
        ]
        sent = eng.campaign_emails(
            ct.person_id.to_numpy(), campaign.week, death, open_rate, cfg.engagement, rng
        )
        parts.append(sent.assign(issue=np.int32(-1), campaign=np.int8(i)))
    names = ("person", "issue", "campaign", "event", "week")
    cols = {c: np.concatenate([p[c].to_numpy() for p in parts]) for c in names}
    del parts, news
    by_time = np.argsort(cols["week"], kind="stable")
    cols = {c: v[by_time] for c, v in cols.items()}
    labels, month_weeks = _months(cfg.start, cfg.total_weeks)
    bounds = np.searchsorted(cols["week"], month_weeks[1:])
    for label, lo, hi in zip(labels, np.r_[0, bounds], np.r_[bounds, by_time.size], strict=True):
        person = cols["person"][lo:hi]
        fmt.write(
            {
                "contact_id": crm.take(person),
                "address": emails.take(person),
                "issue": cols["issue"][lo:hi],
                "campaign": _choice(np.maximum(cols["campaign"][lo:hi], 0), ids),
                "event": _lookup(cols["event"][lo:hi], eng.EMAIL_EVENTS),
                "week": cols["week"][lo:hi],
            },
            "contact_id, address, CASE WHEN issue >= 0 THEN 'NL-' || "
            "lpad(CAST(issue AS VARCHAR), 4, '0') ELSE CAST(campaign AS VARCHAR) END AS mailing, "
            f"event, {fmt.ts('week')} AS event_time",
            out / "email" / f"events_{label}.csv",
        )
    return int(by_time.size)


def _write_consents(
    fmt: _Formatter,
    subs: pd.DataFrame,
    crm: _Ids,
    join: np.ndarray,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> int:
    """Consent history: e-mail marketing and profiling granted at sign-up, withdrawn later
    by unsubscribing (or, for profiling, at a random time)."""
    in_crm = ~crm.missing
    subscribed = subs.subscribed.to_numpy() & in_crm
    profiling = in_crm & (rng.random(join.size) < cfg.engagement.profiling_rate)
    withdraw = profiling & (rng.random(join.size) < cfg.engagement.profiling_withdrawal)
    withdraw_week = join + rng.random(join.size) * (cfg.total_weeks - join)
    unsub = subscribed & (subs.stop_reason.to_numpy() == "unsubscribe")
    stop = subs.stop_week.to_numpy() + 6 / (24 * 7)  # recorded a few hours after the click
    blocks = [  # (who, when, email channel?, marketing purpose?, granted?)
        (subscribed, join, True, True, True),
        (profiling, join, False, False, True),
        (unsub, stop, True, True, False),
        (withdraw, withdraw_week, False, False, False),
    ]
    person = np.concatenate([np.flatnonzero(b[0]) for b in blocks])
    week = np.concatenate([b[1][b[0]] for b in blocks])
    flags = np.repeat(np.array([b[2:] for b in blocks]), [int(b[0].sum()) for b in blocks], axis=0)
    order = np.argsort(week, kind="stable")
    person, week, flags = person[order], week[order], flags[order]
    frame = pd.DataFrame(
        {
            "customer": crm.take(person),
            "channel": _lookup(flags[:, 0].astype(int), ("all", "email")),
            "purpose": _lookup(flags[:, 1].astype(int), ("profiling", "marketing")),
            "status": _lookup(flags[:, 2].astype(int), ("withdrawn", "granted")),
            "week": week,
        }
    )
    fmt.write(
        frame,
        f"customer, channel, purpose, status, {fmt.ts('week')} AS recorded_at",
        out / "crm" / "consents.csv",
    )
    return len(frame)


def _write_tickets(
    fmt: _Formatter,
    crm: _Ids,
    join: np.ndarray,
    death: np.ndarray,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> int:
    """Support tickets of CRM customers, rising as engagement fades."""
    start = np.where(crm.missing, np.inf, join)
    t = eng.support_tickets(start, death, cfg.total_weeks, cfg.engagement, rng)
    t = t.iloc[np.argsort(t.week.to_numpy(), kind="stable")].reset_index(drop=True)
    resolved = t.resolved_week.to_numpy() < cfg.total_weeks
    frame = pd.DataFrame(
        {
            "ticket": np.arange(len(t)),
            "customer": crm.take(t.person.to_numpy()),
            "week": t.week.to_numpy(),
            "via": _lookup(t.channel.to_numpy(), eng.TICKET_CHANNELS),
            "topic": _lookup(t.category.to_numpy(), eng.TICKET_CATEGORIES),
            "state": _lookup(resolved.astype(int), ("open", "closed")),
            "resolved_week": np.where(resolved, t.resolved_week.to_numpy(), np.nan),
            "csat": np.where(resolved, t.satisfaction.to_numpy(), -1),
        }
    )
    fmt.write(
        frame,
        "'T' || lpad(CAST(ticket AS VARCHAR), 8, '0') AS ticket, customer, "
        f"{fmt.ts('week')} AS opened, CAST(via AS VARCHAR) AS via, "
        f"CAST(topic AS VARCHAR) AS topic, state, {fmt.ts('resolved_week')} AS closed, "
        "CASE WHEN csat < 0 THEN '' ELSE CAST(csat AS VARCHAR) END AS csat",
        out / "support" / "tickets.csv",
    )
    return len(frame)


WEB_EVENTS = ("login", "product_view", "add_to_cart", "purchase")
MINUTE = 1 / (60 * 24 * 7)


def _months(start: date, total_weeks: float) -> tuple[list[str], np.ndarray]:
    """Labels (YYYY-MM) of the months the calendar touches and the week each begins."""
    labels, weeks = [], []
    month = date(start.year, start.month, 1)
    end = start + timedelta(weeks=total_weeks)
    while month < end:
        labels.append(f"{month:%Y-%m}")
        weeks.append((month - start).days / 7)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return labels, np.array(weeks)


def _write_web(
    fmt: _Formatter,
    people: pd.DataFrame,
    orders: pd.DataFrame,
    record_truth: pd.DataFrame,
    death: np.ndarray,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[int, pd.DataFrame]:
    """Web-analytics events of tracked people, with anonymous cookies, one file per month.

    Each person uses one or more cookies. A purchase session (every online order of a
    tracked person) is logged in when the order is on an account; a browse session is
    logged in with ``login_share`` when the person has an account, else anonymous. So part
    of each cookie's history is anonymous and can be stitched through its logged-in
    sessions. The truth maps every cookie to its person. Sessions are drawn whole, then
    expanded into events a month at a time, which bounds memory.
    """
    e = cfg.engagement
    n = len(people)
    tracked = rng.random(n) < e.web_share
    account = _per_person(record_truth, "webshop", n)
    account_ids = _Ids(account)
    cookies_per = 1 + rng.poisson(e.cookies_mean, size=n)
    offset = np.concatenate([[0], np.cumsum(cookies_per)[:-1]])
    cookie_key = rng.integers(0, 2**62, size=int(cookies_per.sum()), dtype=np.int64)

    buy = orders[orders.online.to_numpy() & ~orders.is_return.to_numpy()]
    buy = buy[tracked[buy.person.to_numpy()]]
    browse = eng.web_sessions(
        tracked, people.first_week.to_numpy(), death, people.lam.to_numpy(), cfg.total_weeks, e, rng
    )
    nb = len(buy)
    s_person = np.concatenate([buy.person.to_numpy(), browse.person.to_numpy()])
    s_buy = np.arange(s_person.size) < nb
    s_category = np.concatenate(
        [buy.category.to_numpy(), rng.integers(0, len(CATEGORIES), size=len(browse))]
    ).astype(np.int64)
    logged = np.r_[buy.account.to_numpy() >= 0, np.zeros(len(browse), bool)]
    logged |= ~s_buy & ~pd.isna(account[s_person]) & (rng.random(s_person.size) < e.login_share)
    views = np.where(s_buy, 1, 1 + rng.poisson(0.7, size=s_person.size))
    # Events per session: [login] + views x product_view + (add_to_cart, purchase if buying).
    count = logged.astype(np.int64) + views + 2 * s_buy
    # Buying sessions end at the order time; browsing sessions start at the drawn time.
    s_week = np.concatenate([buy.week.to_numpy(), browse.week.to_numpy()])
    begin = np.where(s_buy, s_week - (count - 1) * 2 * MINUTE, s_week)
    s_cookie = offset[s_person] + rng.integers(0, cookies_per[s_person])
    s_product = s_category * 1000 + rng.integers(0, 200, size=s_person.size)
    # Number sessions in time order, then expand them month by month.
    order = np.argsort(begin, kind="stable")
    s_person, s_category, logged, views, count, begin, s_cookie, s_product = (
        a[order] for a in (s_person, s_category, logged, views, count, begin, s_cookie, s_product)
    )
    labels, month_weeks = _months(cfg.start, cfg.total_weeks)
    bounds = np.searchsorted(begin, month_weeks[1:])
    total = 0
    for label, lo, hi in zip(labels, np.r_[0, bounds], np.r_[bounds, begin.size], strict=True):
        sessions = np.arange(lo, hi)
        c = count[sessions]
        session = np.repeat(sessions, c)
        k = np.arange(session.size) - np.repeat(np.cumsum(c) - c, c)
        lead = logged[session].astype(np.int64)
        v = views[session]
        kind = np.where(k < lead, 0, np.where(k < lead + v, 1, np.where(k == lead + v, 2, 3)))
        week = begin[session] + k * 2 * MINUTE
        # Views wander over the category; the cart and the purchase hold the session's product.
        wander = s_category[session] * 1000 + rng.integers(0, 200, size=session.size)
        product = np.where(kind >= 2, s_product[session], np.where(kind == 0, -1, wander))
        by_time = np.argsort(week, kind="stable")
        session = session[by_time]
        person = s_person[session]
        fmt.write(
            {
                "cookie": cookie_key[s_cookie[session]],
                "user": account_ids.take(person, logged[session]),
                "session": session,
                "week": week[by_time],
                "kind": _lookup(kind[by_time], WEB_EVENTS),
                "product": product[by_time],
                "category": _lookup(s_category[session], CATEGORIES),
            },
            "printf('%016x', cookie) AS cookie_id, user AS user_id, "
            "'S' || lpad(CAST(session AS VARCHAR), 9, '0') AS session_id, "
            f"{fmt.ts('week')} AS ts, CAST(kind AS VARCHAR) AS event, "
            "CASE WHEN product < 0 THEN '/login' ELSE '/p/' || CAST(product AS VARCHAR) END "
            "AS page, CASE WHEN product >= 0 THEN 'P' || lpad(CAST(product AS VARCHAR), 5, '0') "
            "END AS product, CASE WHEN product >= 0 THEN CAST(category AS VARCHAR) END AS category",
            out / "web" / f"events_{label}.csv",
        )
        total += session.size
    owner = np.repeat(np.arange(n), cookies_per)
    used = np.zeros(cookie_key.size, dtype=bool)
    used[np.unique(s_cookie)] = True
    cookies = pd.DataFrame({"cookie_key": cookie_key[used], "person_id": owner[used]})
    cookies["anonymous_id"] = [f"{k:016x}" for k in cookies.pop("cookie_key")]
    return total, cookies


def _write_contacts(
    fmt: _Formatter,
    campaign_truth: pd.DataFrame,
    crm: _Ids,
    out: Path,
    cfg: SimulationConfig,
) -> int:
    """Contact history of the past campaigns: treated and held-out customers alike."""
    ids = [c.campaign_id for c in cfg.campaigns]
    which = pd.Categorical(campaign_truth.campaign_id, categories=ids).codes.astype(np.int64)
    frame = pd.DataFrame(
        {
            "campaign": _choice(which, tuple(ids)),
            "customer": crm.take(campaign_truth.person_id.to_numpy()),
            "channel": _choice(which, tuple(c.channel for c in cfg.campaigns)),
            "week": np.array([c.week for c in cfg.campaigns], dtype=float)[which],
            "group": _lookup(
                (campaign_truth.variant == "control").to_numpy().astype(int),
                ("treatment", "control"),
            ),
            "offer": _choice(which, tuple(c.offer for c in cfg.campaigns)),
        }
    )
    fmt.write(
        frame,
        f'campaign, customer, channel, {fmt.ts("week")} AS sent, "group", offer',
        out / "marketing" / "contacts.csv",
    )
    return len(frame)


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
                "is_return": "refund",
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
                "discount": "markdown",
                "is_return": "is_refund",
            },
            constants={"channel": "store"},
            currency=currency,
            timestamp_format="%d/%m/%Y %H:%M:%S",
            timezone="Europe/London",
        ),
        "email_events": SourceConfig(
            contract="email_events",
            system="crm",
            path=f"{d}/email/events_*.csv",
            columns={
                "customer_ref": "contact_id",
                "email": "address",
                "campaign_id": "mailing",
                "event_type": "event",
                "event_ts": "event_time",
            },
        ),
        "consents": SourceConfig(
            contract="consents",
            system="crm",
            path=f"{d}/crm/consents.csv",
            columns={"customer_ref": "customer", "event_ts": "recorded_at"},
        ),
        "support_tickets": SourceConfig(
            contract="support_tickets",
            system="crm",
            path=f"{d}/support/tickets.csv",
            columns={
                "ticket_id": "ticket",
                "customer_ref": "customer",
                "created_at": "opened",
                "channel": "via",
                "category": "topic",
                "status": "state",
                "resolved_at": "closed",
                "satisfaction": "csat",
            },
        ),
        "web_events": SourceConfig(
            contract="web_events",
            system="webshop",
            path=f"{d}/web/events_*.csv",
            columns={
                "anonymous_id": "cookie_id",
                "customer_ref": "user_id",
                "session_id": "session_id",
                "event_ts": "ts",
                "event_type": "event",
                "product_id": "product",
            },
        ),
        "contacts": SourceConfig(
            contract="contacts",
            system="crm",
            path=f"{d}/marketing/contacts.csv",
            columns={
                "campaign_id": "campaign",
                "customer_ref": "customer",
                "sent_at": "sent",
                "variant": "group",
            },
        ),
    }


def simulation_config(data_dir: str, name: str, currency: str = "GBP") -> ProjectConfig:
    return ProjectConfig(name=name, sources=simulation_sources(data_dir, currency))
