"""Customer-specific normalisation of the fields identity resolution compares.

Each function takes a pandas Series of raw values and returns the normalised Series
(missing stays missing), vectorised with pandas string methods; the few steps that need
a library per value (phone parsing, unicode folding) run once per distinct value.
"""

from __future__ import annotations

import re
from functools import cache

import pandas as pd
import phonenumbers
from nicknames import NickNamer
from unidecode import unidecode

ADDRESS_ABBREVIATIONS = {
    "street": "st",
    "road": "rd",
    "avenue": "ave",
    "lane": "ln",
    "drive": "dr",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "crescent": "cres",
    "terrace": "ter",
    "gardens": "gdns",
    "close": "cl",
    "apartment": "apt",
    "flat": "apt",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}
_ABBREVIATION = re.compile(r"\b(" + "|".join(ADDRESS_ABBREVIATIONS) + r")\b")
# Providers that ignore dots in the local part and everything after a plus.
DOTLESS_PROVIDERS = ("gmail.com", "googlemail.com")


def _blank_to_na(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip()
    return s.mask(s == "")


def _per_distinct(s: pd.Series, fn: object) -> pd.Series:
    """Apply a Python function once per distinct non-missing value."""
    distinct = s.dropna().unique()
    mapping = {v: fn(v) for v in distinct}  # type: ignore[operator]
    return s.map(mapping).astype("string")


def email(s: pd.Series) -> pd.Series:
    """Lower case, trimmed; empty or without an '@' becomes missing."""
    s = _blank_to_na(s).str.lower().str.replace(r"\s+", "", regex=True)
    return s.mask(~s.str.contains("@", regex=False).fillna(False))


def email_canonical(s: pd.Series) -> pd.Series:
    """The mailbox a provider really delivers to: plus tags dropped everywhere, dots in the
    local part dropped for providers that ignore them. Kept as a separate key because
    two people may share a mailbox this way only by accident."""
    s = email(s)
    local = s.str.split("@").str[0].str.replace(r"\+.*$", "", regex=True)
    domain = s.str.split("@").str[-1].replace({"googlemail.com": "gmail.com"})
    local = local.mask(domain.isin(DOTLESS_PROVIDERS), local.str.replace(".", "", regex=False))
    return local + "@" + domain


def _fold(value: str) -> str:
    return unidecode(value)


def name(s: pd.Series) -> pd.Series:
    """Unicode folded to ASCII, lower case, punctuation and repeated spaces removed."""
    s = _per_distinct(_blank_to_na(s), _fold).str.lower()
    s = s.str.replace(r"[^a-z ]+", "", regex=True).str.replace(r"\s+", " ", regex=True)
    s = s.str.strip()
    return s.mask(s == "")


@cache
def _nicknamer() -> NickNamer:
    return NickNamer()


def name_group(first: pd.Series) -> pd.Series:
    """For each normalised first name, the sorted names it may stand for: itself and its
    canonical forms from the curated ``nicknames`` list (bob -> bob, robert, ...), joined
    by spaces. Two first names are compatible when one is in the other's group (sharing a
    third name is not enough: the list relates robert and william both to bill)."""
    nn = _nicknamer()

    def group(value: str) -> str:
        return " ".join(sorted({value, *nn.canonicals_of(value)}))

    return _per_distinct(first, group)


def address(s: pd.Series) -> pd.Series:
    """Lower case, punctuation removed, common street words abbreviated."""
    s = _per_distinct(_blank_to_na(s), _fold).str.lower()
    s = s.str.replace(r"[^a-z0-9 ]+", " ", regex=True).str.replace(r"\s+", " ", regex=True)
    s = s.str.strip().str.replace(_ABBREVIATION, lambda m: ADDRESS_ABBREVIATIONS[m[1]], regex=True)
    return s.mask(s == "")


def postcode(s: pd.Series) -> pd.Series:
    """Upper case without spaces or punctuation."""
    s = _blank_to_na(s).str.upper().str.replace(r"[^A-Z0-9]+", "", regex=True)
    return s.mask(s == "")


def identifier(s: pd.Series) -> pd.Series:
    """An id number as its letters and digits only, upper case (123-45-6789 and
    123 45 6789 are one number)."""
    return postcode(s)


def phone(s: pd.Series, region: str = "GB") -> pd.Series:
    """E.164 (+441234567890) via ``phonenumbers`` with a default region for national
    numbers; unparseable or impossible numbers become missing."""

    def parse(value: str) -> str | None:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    return _per_distinct(_blank_to_na(s), parse)


def birth_date(s: pd.Series) -> pd.Series:
    """ISO date text (YYYY-MM-DD) or missing."""
    parsed = pd.to_datetime(s, errors="coerce")
    return parsed.dt.strftime("%Y-%m-%d").astype("string")
