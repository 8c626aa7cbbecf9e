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
CHECKED = ("email", "email_canonical", "phone", "loyalty_id", "national_id", "account_number")


def _substrings(text: str) -> set[str]:
    return {text[i:j] for i in range(len(text) + 1) for j in range(i, len(text) + 1)}


RUNS = _substrings("01234567890") | _substrings("9876543210")
"""Digit runs like 0123456789: national numbers made of them are placeholders."""


def _junk_phones(values: pd.Series, listed: set[str]) -> pd.Series:
    """Phones (and id numbers) whose last ten digits use at most two distinct digits, run up or down, or are
    a listed placeholder's (vectorised: there is one test per distinct phone)."""
    national = values.str.replace(r"\D", "", regex=True).str[-10:]
    distinct = sum(national.str.contains(str(d), regex=False).astype(int) for d in range(10))
    return ((distinct <= 2) | national.isin(RUNS) | national.isin(listed)).astype(bool)


def placeholders(rec: pd.DataFrame, cfg: IdentityConfig) -> pd.DataFrame:
    """Key values that are not keys: (field, value, records, reason)."""
    listed_email = set(nz.email(pd.Series(cfg.placeholders, dtype="string")).dropna())
    listed_digits = {re.sub(r"\D", "", p)[-10:] for p in cfg.placeholders if re.sub(r"\D", "", p)}
    found = []
    for field in CHECKED:
        counts = rec[field].value_counts()
        if counts.empty:
            continue
        # Arrow strings: the regex runs vectorised, not once per value in Python.
        values = pd.Series(counts.index, index=counts.index, dtype="string[pyarrow]")
        if field.startswith("email"):
            local = values.str.replace(r"@.*$", "", regex=True)
            domain = values.str.replace(r"^.*@", "", regex=True)
            junk = (
                values.isin(listed_email) | local.isin(JUNK_LOCAL_PARTS) | domain.isin(JUNK_DOMAINS)
            )
        elif field in ("phone", "national_id"):
            junk = _junk_phones(values, listed_digits)
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
