"""A small sample retailer whose source files carry known defects.

It exists so that ``make demo`` and the tests have realistic, messy inputs in every format
custintel reads (CSV with its own delimiter and date style, Parquet, JSON lines, a SQLite
table) and so the tests know exactly which rows each quality rule must reject: the
planted defects are written to ``truth/expected_quality.json``.
"""

from __future__ import annotations

import csv
import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from custintel.core.config import CsvOptions, ProjectConfig, SourceConfig, SqlSource

FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elif",
    "Felix",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Katja",
    "Lukas",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Rosa",
    "Sami",
    "Tilda",
    "Zoë",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
    "Schröder",
]
CITIES = [
    ("10115", "Berlin"),
    ("20095", "Hamburg"),
    ("80331", "München"),
    ("50667", "Köln"),
    ("60311", "Frankfurt"),
    ("70173", "Stuttgart"),
    ("04109", "Leipzig"),
]
CATEGORIES = ["apparel", "shoes", "home", "beauty", "electronics", "toys", "garden"]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ë": "e"})


class _Truth:
    """Counts of planted defects per source, the oracle the tests compare against."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def rows(self, source: str, n: int) -> None:
        self.data.setdefault(source, {"rows_in": 0, "duplicates": 0, "rules": {}, "flags": {}})
        self.data[source]["rows_in"] += n

    def rule(self, source: str, rule: str, n: int = 1) -> None:
        rules = self.data[source]["rules"]
        rules[rule] = rules.get(rule, 0) + n

    def flag(self, source: str, flag: str, n: int = 1) -> None:
        """A bad optional value: flagged, or cleared on a field-level column."""
        flags = self.data[source]["flags"]
        flags[flag] = flags.get(flag, 0) + n

    def dup(self, source: str, n: int = 1) -> None:
        self.data[source]["duplicates"] += n


def _write_csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


def write_sample(
    out: Path, customers: int = 400, seed: int = 7
) -> tuple[ProjectConfig, dict[str, Any]]:
    """Write the sample sources under ``out`` and return a config mapping them and the truth."""
    rng = random.Random(seed)
    truth = _Truth()
    out.mkdir(parents=True, exist_ok=True)
    ids = [f"CRM{1000 + i}" for i in range(customers)]

    # CRM export: semicolon-delimited, German dates in Berlin time, an extra column.
    crm = []
    bad_emails = 0
    for i, cid in enumerate(ids):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{i}@example.com".lower().translate(ASCII)
        if i % 50 == 7:
            email = email.replace("@", " at ")
            bad_emails += 1
        postcode, city = rng.choice(CITIES)
        created = EPOCH + timedelta(days=rng.randint(0, 300), minutes=rng.randint(0, 1440))
        crm.append(
            [
                cid,
                first,
                last,
                email,
                f"+49 30 {rng.randint(1000000, 9999999)}",
                f"Hauptstr. {rng.randint(1, 200)}",
                postcode,
                city,
                "DE",
                f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1950, 2004)}",
                created.strftime("%d.%m.%Y %H:%M"),
                created.strftime("%d.%m.%Y %H:%M"),
                rng.choice(["ja", "nein"]),
            ]
        )
    crm.append(list(crm[3]))  # an exact duplicate row
    crm.append(
        ["", "Nobody", "Noname", "", "", "", "", "", "DE", "", "01.01.2024 10:00", "", "nein"]
    )
    header = [
        "KundenNr",
        "Vorname",
        "Nachname",
        "EMail",
        "Telefon",
        "Strasse",
        "PLZ",
        "Ort",
        "Land",
        "Geburtsdatum",
        "Angelegt",
        "Geaendert",
        "Newsletter",
    ]
    _write_csv(out / "crm" / "customers.csv", header, crm, delimiter=";")
    with (out / "crm" / "customers.csv").open("a", encoding="utf-8") as handle:
        handle.write("CRM9999;Broken;Row;too;few\r\n")  # a ragged line
    truth.rows("crm_customers", len(crm) + 1)
    truth.dup("crm_customers")
    truth.rule("crm_customers", "not_null.source_id")
    truth.rule("crm_customers", "malformed")
    truth.flag("crm_customers", "syntax.email", bad_emails)

    # Web-shop orders: ISO timestamps with offsets, two monthly files that overlap.
    def order_row(n: int, when: datetime) -> list[Any]:
        amount = round(rng.lognormvariate(3.6, 0.6), 2)
        return [
            f"W{n:06d}",
            rng.choice(ids),
            when.isoformat(),
            f"{amount:.2f}",
            "EUR",
            rng.choice(["online", "app"]),
            rng.choice(CATEGORIES),
            rng.randint(1, 5),
            f"{rng.choice([0, 0, 0, 5, 10]):.2f}",
            "false",
        ]

    header = [
        "order_no",
        "customer",
        "created",
        "total",
        "currency",
        "channel",
        "category",
        "items",
        "discount",
        "refund",
    ]
    jan = [
        order_row(n, datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 740)))
        for n in range(1200)
    ]
    feb = [
        order_row(n, datetime(2025, 2, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 670)))
        for n in range(1200, 2300)
    ]
    feb = [list(r) for r in jan[-25:]] + feb  # the February export repeats 25 January orders
    jan[10][4] = "XXX"
    jan[11][3] = "-12.00"  # a negative purchase not marked as a return
    jan[16][3] = "0.00"  # a free order: kept, flagged
    jan[12][3] = "2500000.00"
    jan[13][2] = "2099-05-01T10:00:00+00:00"
    jan[14][2] = "31/02/2025 25:61"
    jan[15][9] = "true"
    jan[15][3] = "-49.90"  # a return with a negative amount is fine
    jan.append([jan[20][0], *jan[21][1:]])  # same order number, other values
    feb[30][5] = "Store"  # case is normalised, not rejected
    _write_csv(out / "shop" / "orders_2025_01.csv", header, jan)
    _write_csv(out / "shop" / "orders_2025_02.csv", header, feb)
    truth.rows("shop_orders", len(jan) + len(feb))
    truth.dup("shop_orders", 25)
    truth.flag("shop_orders", "amount.zero")
    for rule in (
        "allowed.currency",
        "amount.sign",
        "range.amount.max",
        "future.order_ts",
        "type.order_ts",
        "unique.key",
    ):
        truth.rule("shop_orders", rule)

    # Store tills in SQLite: no currency column (default EUR), loyalty card as customer.
    db = out / "store" / "pos.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as con:
        con.execute(
            "CREATE TABLE pos_sales (receipt TEXT, card TEXT, sold_at TEXT, "
            "gross REAL, store TEXT, dept TEXT, qty INTEGER)"
        )
        rows = []
        for n in range(800):
            when = datetime(2025, 1, 1) + timedelta(minutes=rng.randint(0, 80000))
            card = rng.choice(ids).replace("CRM", "L") if rng.random() < 0.7 else None
            rows.append(
                (
                    f"S{n:06d}",
                    card,
                    when.strftime("%Y-%m-%d %H:%M:%S"),
                    round(rng.lognormvariate(3.2, 0.5), 2),
                    f"store-{rng.randint(1, 9)}",
                    rng.choice(CATEGORIES),
                    rng.randint(1, 4),
                )
            )
        rows[5] = (*rows[5][:3], None, *rows[5][4:])
        con.executemany("INSERT INTO pos_sales VALUES (?,?,?,?,?,?,?)", rows)
    truth.rows("store_orders", 800)
    truth.rule("store_orders", "not_null.amount")

    # Web analytics as JSON lines.
    web = out / "web" / "events.jsonl"
    web.parent.mkdir(parents=True, exist_ok=True)
    types = ["page_view", "product_view", "add_to_cart", "search", "login"]
    with web.open("w", encoding="utf-8") as handle:
        for n in range(1500):
            event = {
                "cookie": f"ck-{rng.randint(1, 600)}",
                "user": rng.choice(ids) if rng.random() < 0.3 else None,
                "session": f"s{n // 5}",
                "ts": (EPOCH + timedelta(seconds=rng.randint(0, 30_000_000))).isoformat(),
                "type": rng.choice(types),
                "url": f"/p/{rng.randint(1, 300)}",
            }
            if n == 100:
                event["type"] = "teleport"
            handle.write(json.dumps(event) + "\n")
            if n == 200:
                handle.write('{"cookie": "ck-1", "ts": \n')  # a truncated line
    truth.rows("web_events", 1501)
    truth.rule("web_events", "allowed.event_type")
    truth.rule("web_events", "malformed")

    # E-mail platform export as Parquet.
    email_rows = []
    for n in range(1000):
        cid = rng.choice(ids)
        email_rows.append(
            (
                cid,
                f"M{n % 6}",
                rng.choice(["send", "open", "click"]),
                EPOCH + timedelta(days=rng.randint(0, 400), seconds=n),
            )
        )
    email_rows[9] = (email_rows[9][0], email_rows[9][1], "opened-twice", email_rows[9][3])
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE e (recipient VARCHAR, mailing VARCHAR, event VARCHAR, sent TIMESTAMPTZ)"
    )
    con.executemany("INSERT INTO e VALUES (?,?,?,?)", email_rows)
    (out / "esp").mkdir(exist_ok=True)
    con.execute(f"COPY e TO '{out / 'esp' / 'events.parquet'}' (FORMAT parquet)")
    con.close()
    truth.rows("email_events", 1000)
    truth.rule("email_events", "allowed.event_type")

    # Support tickets, consents and campaign contacts as plain CSV.
    tickets = [
        [
            f"T{n:05d}",
            rng.choice(ids),
            (EPOCH + timedelta(hours=rng.randint(0, 9000))).isoformat(),
            rng.choice(["email", "phone", "chat"]),
            rng.choice(["delivery", "billing", "product"]),
            "closed",
            "",
            str(rng.randint(1, 5)),
        ]
        for n in range(300)
    ]
    tickets[4][7] = "9"
    _write_csv(
        out / "support" / "tickets.csv",
        [
            "ticket_id",
            "customer_ref",
            "created_at",
            "channel",
            "category",
            "status",
            "resolved_at",
            "satisfaction",
        ],
        tickets,
    )
    truth.rows("support_tickets", 300)
    truth.rule("support_tickets", "range.satisfaction.max")

    consents = [
        [
            cid,
            "email",
            "marketing",
            "granted",
            (EPOCH + timedelta(days=rng.randint(0, 30))).isoformat(),
        ]
        for cid in ids
    ]
    consents += [
        [cid, "email", "marketing", "withdrawn", (EPOCH + timedelta(days=200 + i)).isoformat()]
        for i, cid in enumerate(ids[:40])
    ]
    consents[2][3] = "maybe"
    _write_csv(
        out / "consent" / "consents.csv",
        ["customer_ref", "channel", "purpose", "status", "event_ts"],
        consents,
    )
    truth.rows("consents", len(consents))
    truth.rule("consents", "allowed.status")

    contacts = [
        [
            "SPRING25",
            cid,
            "email",
            "2025-03-01T09:00:00Z",
            "control" if rng.random() < 0.2 else "treatment",
            "10% off",
        ]
        for cid in ids
    ]
    contacts[8][4] = "holdout"
    _write_csv(
        out / "campaigns" / "contacts.csv",
        ["campaign_id", "customer_ref", "channel", "sent_at", "variant", "offer"],
        contacts,
    )
    truth.rows("contacts", len(contacts))
    truth.rule("contacts", "allowed.variant")

    (out / "truth").mkdir(exist_ok=True)
    (out / "truth" / "expected_quality.json").write_text(
        json.dumps(truth.data, indent=2, sort_keys=True)
    )
    return sample_config(out), truth.data


def sample_config(data_dir: Path, project_dir: Path | None = None) -> ProjectConfig:
    """A project config mapping the sample sources (paths relative to ``project_dir``)."""
    base = Path(data_dir)
    if project_dir is not None:
        try:
            base = Path(data_dir).resolve().relative_to(Path(project_dir).resolve())
        except ValueError:
            base = Path(data_dir).resolve()
    d = base.as_posix()
    sources = {
        "crm_customers": SourceConfig(
            contract="customers",
            system="crm",
            path=f"{d}/crm/*.csv",
            csv=CsvOptions(delimiter=";"),
            columns={
                "source_id": "KundenNr",
                "first_name": "Vorname",
                "last_name": "Nachname",
                "email": "EMail",
                "phone": "Telefon",
                "address": "Strasse",
                "postcode": "PLZ",
                "city": "Ort",
                "country": "Land",
                "birth_date": "Geburtsdatum",
                "created_at": "Angelegt",
                "updated_at": "Geaendert",
            },
            timestamp_format="%d.%m.%Y %H:%M",
            date_format="%d.%m.%Y",
            timezone="Europe/Berlin",
        ),
        "shop_orders": SourceConfig(
            contract="orders",
            system="webshop",
            path=f"{d}/shop/orders_*.csv",
            columns={
                "order_id": "order_no",
                "customer_ref": "customer",
                "order_ts": "created",
                "amount": "total",
                "quantity": "items",
                "is_return": "refund",
            },
        ),
        "store_orders": SourceConfig(
            contract="orders",
            system="loyalty",
            sql=SqlSource(url=f"sqlite:///{d}/store/pos.db", table="pos_sales"),
            columns={
                "order_id": "receipt",
                "customer_ref": "card",
                "order_ts": "sold_at",
                "amount": "gross",
                "store_id": "store",
                "category": "dept",
                "quantity": "qty",
            },
            constants={"channel": "store"},
            currency="EUR",
            timezone="Europe/Berlin",
        ),
        "web_events": SourceConfig(
            contract="web_events",
            system="webshop",
            path=f"{d}/web/*.jsonl",
            columns={
                "anonymous_id": "cookie",
                "customer_ref": "user",
                "session_id": "session",
                "event_ts": "ts",
                "event_type": "type",
                "page": "url",
            },
        ),
        "email_events": SourceConfig(
            contract="email_events",
            system="crm",
            path=f"{d}/esp/*.parquet",
            columns={
                "customer_ref": "recipient",
                "campaign_id": "mailing",
                "event_type": "event",
                "event_ts": "sent",
            },
        ),
        "support_tickets": SourceConfig(
            contract="support_tickets", system="crm", path=f"{d}/support/*.csv"
        ),
        "consents": SourceConfig(contract="consents", system="crm", path=f"{d}/consent/*.csv"),
        "contacts": SourceConfig(contract="contacts", system="crm", path=f"{d}/campaigns/*.csv"),
    }
    return ProjectConfig(sources=sources)
