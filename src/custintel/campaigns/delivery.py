"""What leaves the warehouse after a campaign run: files in the import formats of e-mail,
SMS, mail-house and ad platforms, and the batches a webhook receives.

Pure functions of the treated contacts (one row per action, with the customer's contact
details): nothing here reads the warehouse or the network. Ad audiences carry only
SHA-256 hashes of normalised e-mails and phones, as the platforms ask.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import phonenumbers

CONTACT_COLUMNS = (
    "customer_id", "offer", "channel", "send_at", "send_weekday",
    "email", "phone", "first_name", "last_name", "address", "postcode", "city",
)  # fmt: skip
GMAIL = ("gmail.com", "googlemail.com")


def _text(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().replace("", pd.NA)


def normalise_email(s: pd.Series, *, drop_gmail_dots: bool = False) -> pd.Series:
    """Trimmed and lower-cased; for Google's matching also without the dots before
    ``@gmail.com`` (Gmail ignores them, so Google hashes them away)."""
    e = _text(s).str.lower()
    if drop_gmail_dots:
        local = e.str.extract(r"^(.*)@", expand=False)
        domain = e.str.extract(r"@([^@]*)$", expand=False)
        gmail = domain.isin(GMAIL).fillna(False).astype(bool)
        e = e.where(~gmail, local.str.replace(".", "", regex=False) + "@" + domain)
    return e


def normalise_phone(s: pd.Series, region: str, *, plus: bool = True) -> pd.Series:
    """E.164 (+441234567890), parsed once per distinct value with ``phonenumbers`` and a
    default region for national numbers; without the ``+`` for platforms that want digits
    only. Numbers that cannot be parsed become missing."""

    def parse(value: str) -> str | None:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(number):
            return None
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return e164 if plus else e164[1:]

    text = _text(s)
    distinct = text.dropna().unique()
    mapping = {v: parse(v) for v in distinct}
    return text.map(mapping, na_action="ignore").astype("string")


def sha256(s: pd.Series) -> pd.Series:
    """Lower-case hex SHA-256 of each value; missing stays empty (never the hash of "")."""
    out = [
        hashlib.sha256(v.encode("utf-8")).hexdigest() if isinstance(v, str) else ""
        for v in s.astype(object).where(s.notna(), None)
    ]
    return pd.Series(out, index=s.index, dtype="string")


def _common(c: pd.DataFrame, campaign: str) -> dict[str, pd.Series]:
    return {
        "customer_id": c["customer_id"],
        "campaign": pd.Series(campaign, index=c.index),
        "offer": c["offer"],
        "send_at": c["send_at"].map(lambda t: pd.Timestamp(t).isoformat()),
        "send_weekday": c["send_weekday"]
        if "send_weekday" in c
        else pd.Series(pd.NA, index=c.index),
    }


def email_platform(c: pd.DataFrame, campaign: str, region: str) -> pd.DataFrame:
    """The columns e-mail service providers' list imports map by default."""
    return pd.DataFrame(
        {
            "Email Address": normalise_email(c["email"]),
            "First Name": c["first_name"],
            "Last Name": c["last_name"],
            **_common(c, campaign),
        }
    )


def sms_platform(c: pd.DataFrame, campaign: str, region: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"phone_number": normalise_phone(c["phone"], region), **_common(c, campaign)}
    )


def mail_house(c: pd.DataFrame, campaign: str, region: str) -> pd.DataFrame:
    name = (c["first_name"].fillna("") + " " + c["last_name"].fillna("")).str.strip()
    return pd.DataFrame(
        {
            "name": name,
            "address": c["address"],
            "postcode": c["postcode"],
            "city": c["city"],
            **_common(c, campaign),
        }
    )


def google_customer_match(c: pd.DataFrame, campaign: str, region: str) -> pd.DataFrame:
    """Customer Match's upload columns, hashed: e-mail normalised (Gmail dots dropped),
    phone in E.164 with its ``+``. No customer id leaves with an ad audience."""
    return pd.DataFrame(
        {
            "Email": sha256(normalise_email(c["email"], drop_gmail_dots=True)),
            "Phone": sha256(normalise_phone(c["phone"], region)),
        }
    )


def meta_custom_audience(c: pd.DataFrame, campaign: str, region: str) -> pd.DataFrame:
    """Custom audience columns, hashed: e-mail trimmed and lower-cased, phone as digits
    with the country code and no ``+``."""
    return pd.DataFrame(
        {
            "email": sha256(normalise_email(c["email"])),
            "phone": sha256(normalise_phone(c["phone"], region, plus=False)),
        }
    )


FORMATS: dict[str, Callable[[pd.DataFrame, str, str], pd.DataFrame]] = {
    "email_platform": email_platform,
    "sms_platform": sms_platform,
    "mail_house": mail_house,
    "google_customer_match": google_customer_match,
    "meta_custom_audience": meta_custom_audience,
}


def contact_rows(
    decisions: pd.DataFrame, campaign: str, control_group: str, as_of: dt.date, run_id: str
) -> pd.DataFrame:
    """The contact history a run adds: every chosen action, treated or held out, planned
    at the customer's send hour (e-mail) or 09:00 UTC on the decision date."""
    midnight = pd.Timestamp(dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC))
    chosen = decisions[decisions.outcome != "excluded"]
    hours = np.where(chosen.channel == "email", chosen.send_hour.fillna(10), 9).astype(int)
    return pd.DataFrame(
        {
            "campaign_id": campaign,
            "customer_id": chosen.customer_id.to_numpy(),
            "offer": chosen.offer.to_numpy(),
            "channel": chosen.channel.to_numpy(),
            "variant": chosen.outcome.to_numpy(),
            "control_group": control_group,
            "send_at": midnight + pd.to_timedelta(hours, unit="h"),
            "send_weekday": chosen.send_weekday.to_numpy(),
            "as_of": as_of,
            "run_id": run_id,
        }
    )


def deliverable(contacts: pd.DataFrame) -> pd.DataFrame:
    """What may leave: the treated contacts only (never the control group)."""
    return contacts[contacts.variant == "treatment"]


def export_frame(contacts: pd.DataFrame, fmt: str, campaign: str, region: str) -> pd.DataFrame:
    """The rows of one channel's file, in customer order (stable across re-runs)."""
    c = contacts.sort_values(["customer_id", "offer"], kind="stable")
    return FORMATS[fmt](c, campaign, region).reset_index(drop=True)


@dataclass(frozen=True)
class Batch:
    """One webhook request: its idempotency key, position and JSON body."""

    key: str
    number: int
    of: int
    customers: tuple[str, ...]
    body: bytes


def batches(
    contacts: pd.DataFrame, campaign: str, as_of: str, channel: str, size: int
) -> Iterator[Batch]:
    """The channel's treated contacts in customer order, ``size`` per batch. The key is a
    hash of the batch's content, so the same decisions re-sent are the same requests (a
    receiver drops the repeat) and changed decisions are new ones."""
    c = contacts.sort_values(["customer_id", "offer"], kind="stable").reset_index(drop=True)
    columns = [k for k in ("email", "phone") if k in c]
    n = len(c)
    total = max(1, -(-n // size)) if n else 0
    for i in range(total):
        part = c.iloc[i * size : (i + 1) * size]
        records = [
            {
                "customer_id": r["customer_id"],
                "offer": r["offer"],
                "send_at": pd.Timestamp(r["send_at"]).isoformat(),
                **({"send_weekday": _plain(r["send_weekday"])} if "send_weekday" in r else {}),
                **{k: _plain(r[k]) for k in columns},
            }
            for r in part.to_dict("records")
        ]
        content = json.dumps(records, sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(f"{campaign}|{as_of}|{channel}|{content}".encode()).hexdigest()[:32]
        body = json.dumps(
            {
                "campaign": campaign,
                "as_of": as_of,
                "channel": channel,
                "batch": i + 1,
                "of": total,
                "idempotency_key": key,
                "contacts": records,
            },
            separators=(",", ":"),
        ).encode()
        yield Batch(key, i + 1, total, tuple(part["customer_id"]), body)


def _plain(value: object) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def address_columns(channel_address: str) -> list[str]:
    """The contact details a channel's webhook carries (only what it needs)."""
    return {
        "email": ["email"],
        "phone": ["phone"],
        "postal": [],
        "email_or_phone": ["email", "phone"],
    }.get(channel_address, [])


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
