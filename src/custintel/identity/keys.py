"""Which key values may link records: placeholders and shared values are not keys.

A placeholder ("test@test.com", "0000000000") or a value many records share (a company
mailbox, a shop's phone) would chain unrelated people into one customer. Such values are
found here, reported, and blanked in the copy of the records used for linking.
"""

from __future__ import annotations

import re

import pandas as pd

from custintel.core.config import IdentityConfig
from custintel.identity import normalize as nz

JUNK_LOCAL_PARTS = {
    "test",
    "none",
    "noemail",
    "no",
    "na",
    "n/a",
    "null",
    "unknown",
    "example",
    "nobody",
    "noreply",
    "no-reply",
    "asdf",
    "xxx",
}
JUNK_DOMAINS = {"test.com", "none.com", "noemail.com", "nomail.com"}
CHECKED = ("email", "email_canonical", "phone", "loyalty_id")


def _junk_phone(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    national = digits[-10:]
    return len(set(national)) <= 2 or national in "01234567890" or national in "9876543210"


def placeholders(rec: pd.DataFrame, cfg: IdentityConfig) -> pd.DataFrame:
    """Key values that are not keys: (field, value, records, reason)."""
    listed_email = set(nz.email(pd.Series(cfg.placeholders, dtype="string")).dropna())
    listed_digits = {re.sub(r"\D", "", p)[-10:] for p in cfg.placeholders if re.sub(r"\D", "", p)}
    found = []
    for field in CHECKED:
        counts = rec[field].value_counts()
        if counts.empty:
            continue
        values = counts.index.to_series()
        if field.startswith("email"):
            local = values.str.split("@").str[0]
            domain = values.str.split("@").str[-1]
            junk = (
                values.isin(listed_email) | local.isin(JUNK_LOCAL_PARTS) | domain.isin(JUNK_DOMAINS)
            )
        elif field == "phone":
            junk = values.map(
                lambda v: _junk_phone(v) or re.sub(r"\D", "", v)[-10:] in listed_digits
            ).astype(bool)
        else:
            junk = values.isin(cfg.placeholders)
        shared = counts > cfg.max_key_share
        for value, n in counts[junk.to_numpy() | shared.to_numpy()].items():
            reason = "placeholder" if junk[value] else f"shared by more than {cfg.max_key_share}"
            found.append({"field": field, "value": value, "records": int(n), "reason": reason})
    return pd.DataFrame(found, columns=["field", "value", "records", "reason"])


def blank_non_keys(rec: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """A copy of the records with placeholder and shared values removed from key fields."""
    out = rec.copy()
    for field, part in found.groupby("field"):
        out[field] = out[field].mask(out[field].isin(part["value"]))
    return out
