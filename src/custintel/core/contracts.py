"""Data contracts: the canonical shape of every table a source can feed.

A contract lists its columns (type, whether the source must provide it, whether it may be
empty, allowed values and plausible ranges), the key that makes a row unique, and which
columns are checked for syntax only (flagged, never rejected). Sources map their own
column names onto a contract in ``custintel.yaml``. docs/data-model.md documents them; a
test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["string", "timestamp", "date", "decimal", "integer", "boolean"]

SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "decimal": "DECIMAL(18,4)",
    "integer": "BIGINT",
    "boolean": "BOOLEAN",
}

# ISO 4217 codes in circulation.
CURRENCIES = tuple(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWL",
    ]
)


@dataclass(frozen=True)
class Column:
    """One column of a contract.

    ``required``: the source must provide it (mapped or constant), else the source fails.
    ``nullable``: False means an empty value sends the row to quarantine.
    ``allowed``: the value must be one of these (compared case-insensitively, stored lower
    case, except currencies which are upper case).
    ``minimum``/``maximum``: plausible range for numbers (inclusive).
    ``syntax``: ``email`` or ``phone``: a bad value is flagged, the row is kept.
    ``field_level``: an optional attribute of the row, not what the row is about: a value
    that breaks its rules (type, range, syntax) is cleared on the clean row and recorded
    in ``quarantine.fields`` with its raw text, and the row is kept.
    """

    name: str
    type: ColumnType
    description: str
    required: bool = False
    nullable: bool = True
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    syntax: Literal["email", "phone"] | None = None
    field_level: bool = False

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class Contract:
    """A canonical table: its columns, key, main timestamp and description."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    timestamp: str
    amount_rule: bool = False
    """Orders only: a purchase's amount is not negative (zero is flagged), a return's is
    not zero."""
    line_key: str | None = None
    """A key column a source may leave unmapped: each line is then its own record, keyed
    ``<file>:<line>`` (a bare purchase log has no order numbers)."""

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"contract {self.name!r} has no column {name!r}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, type_: ColumnType, description: str, **kw: object) -> Column:
    return Column(name, type_, description, **kw)  # type: ignore[arg-type]


CUSTOMERS = Contract(
    name="customers",
    description="Customer profiles as each source system (CRM, web shop, loyalty) holds them.",
    key=("source_id", "updated_at"),
    timestamp="updated_at",
    columns=(
        _c(
            "source_id",
            "string",
            "The record's id in its source system.",
            required=True,
            nullable=False,
        ),
        _c("first_name", "string", "Given name."),
        _c("last_name", "string", "Family name."),
        _c("full_name", "string", "Whole name when the source does not split it."),
        _c("email", "string", "E-mail address.", syntax="email", field_level=True),
        _c("phone", "string", "Phone number in any format.", syntax="phone", field_level=True),
        _c("address", "string", "Street address."),
        _c("postcode", "string", "Postal code."),
        _c("city", "string", "City or town."),
        _c("region", "string", "State, county or province."),
        _c("country", "string", "Country (ISO code or name)."),
        _c("birth_date", "date", "Date of birth.", field_level=True),
        _c("loyalty_id", "string", "Loyalty card number, when known."),
        _c("national_id", "string", "A national or tax id number (SSN, NI number, ...)."),
        _c(
            "account_number",
            "string",
            "Any other id the source carries for the person (customer or account number "
            "shared between systems).",
        ),
        _c(
            "created_at",
            "timestamp",
            "When the record was created in the source.",
            field_level=True,
        ),
        _c("updated_at", "timestamp", "When the record last changed in the source."),
    ),
)

ORDERS = Contract(
    name="orders",
    description="Purchases and returns from e-commerce and stores, one row per order.",
    key=("order_id",),
    timestamp="order_ts",
    amount_rule=True,
    line_key="order_id",
    columns=(
        _c(
            "order_id",
            "string",
            "Order number, unique within its source (unmapped: `<file>:<line>`, each line "
            "one order).",
            required=True,
            nullable=False,
        ),
        _c("customer_ref", "string", "The buyer's id in the source system (empty for guests)."),
        _c("order_ts", "timestamp", "When the order was placed.", required=True, nullable=False),
        _c(
            "amount",
            "decimal",
            "Order value (positive; a return may be negative).",
            required=True,
            nullable=False,
        ),
        _c(
            "currency",
            "string",
            "ISO 4217 currency code.",
            required=True,
            nullable=False,
            allowed=CURRENCIES,
        ),
        _c(
            "channel",
            "string",
            "Where it was bought.",
            allowed=("online", "store", "app", "phone", "marketplace"),
        ),
        _c("store_id", "string", "Store or site id."),
        _c("category", "string", "Main product category."),
        _c("quantity", "integer", "Number of items.", minimum=0, maximum=100_000),
        _c("discount", "decimal", "Discount granted, in the order's currency.", minimum=0),
        _c("is_return", "boolean", "True for a return or refund."),
    ),
)

WEB_EVENTS = Contract(
    name="web_events",
    description="Web-analytics events: anonymous cookie ids, logged-in customers when known.",
    key=("anonymous_id", "session_id", "event_ts", "event_type", "page", "product_id"),
    timestamp="event_ts",
    columns=(
        _c("anonymous_id", "string", "Cookie or device id.", required=True, nullable=False),
        _c("customer_ref", "string", "Logged-in customer's id in the source system."),
        _c("session_id", "string", "Session id."),
        _c("event_ts", "timestamp", "When the event happened.", required=True, nullable=False),
        _c(
            "event_type",
            "string",
            "What happened.",
            required=True,
            nullable=False,
            allowed=(
                "page_view",
                "product_view",
                "search",
                "add_to_cart",
                "checkout",
                "purchase",
                "login",
                "logout",
            ),
        ),
        _c("page", "string", "Page path or URL."),
        _c("product_id", "string", "Product viewed or added."),
        _c("category", "string", "Product category."),
        _c("utm_source", "string", "Campaign source of the session (utm_source), if tagged."),
        _c(
            "utm_medium",
            "string",
            "Campaign medium of the session (utm_medium: cpc, email, display...); "
            "no source and no medium is a direct visit.",
        ),
        _c("utm_campaign", "string", "Campaign name of the session (utm_campaign)."),
    ),
)

EMAIL_EVENTS = Contract(
    name="email_events",
    description="E-mail platform events: sends, opens, clicks, bounces, unsubscribes.",
    key=("customer_ref", "campaign_id", "event_type", "event_ts"),
    timestamp="event_ts",
    columns=(
        _c(
            "customer_ref",
            "string",
            "Recipient's id in the source system.",
            required=True,
            nullable=False,
        ),
        _c("email", "string", "Recipient address.", syntax="email", field_level=True),
        _c("campaign_id", "string", "Campaign or mailing id."),
        _c(
            "event_type",
            "string",
            "What happened.",
            required=True,
            nullable=False,
            allowed=("send", "open", "click", "bounce", "unsubscribe", "complaint"),
        ),
        _c("event_ts", "timestamp", "When it happened.", required=True, nullable=False),
    ),
)

SUPPORT_TICKETS = Contract(
    name="support_tickets",
    description="Customer-service tickets.",
    key=("ticket_id",),
    timestamp="created_at",
    columns=(
        _c("ticket_id", "string", "Ticket number.", required=True, nullable=False),
        _c("customer_ref", "string", "Customer's id in the source system."),
        _c("created_at", "timestamp", "When the ticket was opened.", required=True, nullable=False),
        _c(
            "channel",
            "string",
            "How the customer got in touch.",
            allowed=("email", "phone", "chat", "web", "store", "social"),
        ),
        _c("category", "string", "Topic (delivery, billing, product ...)."),
        _c("status", "string", "Ticket state.", allowed=("open", "pending", "resolved", "closed")),
        _c("resolved_at", "timestamp", "When it was resolved."),
        _c("satisfaction", "integer", "Satisfaction score 1 to 5.", minimum=1, maximum=5),
    ),
)

CONSENTS = Contract(
    name="consents",
    description="Consent and opt-out records: who allowed or withdrew what, when.",
    key=("customer_ref", "channel", "purpose", "status", "event_ts"),
    timestamp="event_ts",
    columns=(
        _c(
            "customer_ref",
            "string",
            "Customer's id in the source system.",
            required=True,
            nullable=False,
        ),
        _c(
            "channel",
            "string",
            "Contact channel the consent covers.",
            required=True,
            nullable=False,
            allowed=("email", "sms", "phone", "post", "ads", "push", "web", "all"),
        ),
        _c(
            "purpose",
            "string",
            "What the data may be used for.",
            required=True,
            nullable=False,
            allowed=("marketing", "profiling", "analytics", "third_party", "all"),
        ),
        _c(
            "status",
            "string",
            "Granted or withdrawn.",
            required=True,
            nullable=False,
            allowed=("granted", "withdrawn"),
        ),
        _c(
            "event_ts",
            "timestamp",
            "When it was given or withdrawn.",
            required=True,
            nullable=False,
        ),
    ),
)

CONTACTS = Contract(
    name="contacts",
    description="Campaign contact history: who was targeted, treated or held out, when.",
    key=("campaign_id", "customer_ref", "channel", "sent_at"),
    timestamp="sent_at",
    columns=(
        _c("campaign_id", "string", "Campaign id.", required=True, nullable=False),
        _c(
            "customer_ref",
            "string",
            "Customer's id in the source system.",
            required=True,
            nullable=False,
        ),
        _c(
            "channel",
            "string",
            "Contact channel.",
            allowed=("email", "sms", "phone", "post", "push", "web", "app", "ads"),
        ),
        _c(
            "sent_at",
            "timestamp",
            "When the contact was made (or would have been, for control).",
            required=True,
            nullable=False,
        ),
        _c(
            "variant",
            "string",
            "treatment or control (held out).",
            required=True,
            nullable=False,
            allowed=("treatment", "control"),
        ),
        _c("offer", "string", "Offer or creative."),
    ),
)

CONTRACTS: dict[str, Contract] = {
    c.name: c
    for c in (CUSTOMERS, ORDERS, WEB_EVENTS, EMAIL_EVENTS, SUPPORT_TICKETS, CONSENTS, CONTACTS)
}

LINEAGE_COLUMNS: dict[str, str] = {
    "source": "Source system the row came from (the source's `system`, default its name).",
    "_source": "Name of the configured source (key in custintel.yaml).",
    "_file": "File (relative to the project) or `sql:<source>` the row was read from.",
    "_line": "Line of the row in its file (header = line 1), or row number of a query.",
    "_load_id": "Id of the load that wrote the row (one per file and content hash).",
    "_flags": "Comma-separated syntax flags (e.g. email.syntax) of a kept row, or empty.",
    "_extra": "JSON of source columns the contract does not know (schema drift), or empty.",
}


def get_contract(name: str) -> Contract:
    try:
        return CONTRACTS[name]
    except KeyError:
        known = ", ".join(CONTRACTS)
        raise KeyError(f"unknown contract {name!r}; known: {known}") from None
