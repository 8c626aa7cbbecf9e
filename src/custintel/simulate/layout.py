"""Where the simulated files go and how a project maps them onto the contracts: each
system's folder, its own column names, delimiter and date format."""

from __future__ import annotations

from custintel.core.config import CsvOptions, ProjectConfig, SourceConfig

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
