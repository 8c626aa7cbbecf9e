"""The source records identity resolution works on: the latest version of every customer
profile, with its fields normalised.

Profiles arrive in ``clean.customers`` (one row per source record and ``updated_at``).
The latest version of each ``(source, source_id)`` is the record; ``rid`` numbers them in
a stable order so every later step can refer to a record by an integer.
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import pandas as pd

from custintel.core.config import IdentityConfig
from custintel.core.contracts import CUSTOMERS
from custintel.core.errors import CustintelError
from custintel.core.warehouse import Warehouse
from custintel.identity import normalize as nz

IDENTIFYING = (
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "loyalty_id",
    "national_id",
    "account_number",
)
KEY_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "email_canonical",
    "phone",
    "loyalty_id",
    "national_id",
    "account_number",
    "birth_date",
    "postcode",
    "address",
    "city",
    "region",
)


class IdentityInputError(CustintelError):
    """The customer profiles cannot be resolved (a source lacks every identifying field)."""


def latest_versions(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, source_id): the most recently updated (then created) version."""
    order = raw.sort_values(
        ["source", "source_id", "updated_at", "created_at"], na_position="first", kind="stable"
    )
    return order.drop_duplicates(["source", "source_id"], keep="last").reset_index(drop=True)


def refs_as_profiles(wh: Warehouse) -> pd.DataFrame:
    """Without customer profiles (a bare purchase log), the buyer ids the activity tables
    carry are the customers: one empty profile per ``(source, customer_ref)``, so every
    later stage finds its customer ids where it always does."""
    parts = []
    for name in wh.tables("clean"):
        t = wh.table("clean", name)
        if "customer_ref" in t.columns and "source" in t.columns:
            refs = t.filter(t.customer_ref.notnull())
            parts.append(refs.select(source=refs.source, source_id=refs.customer_ref).distinct())
    if not parts:
        raise IdentityInputError(
            "identity: no customer profiles yet (map a `customers` source and ingest), "
            "nor a table with a customer_ref (map it on the orders)"
        )
    found = ibis.union(*parts, distinct=True).execute()
    columns = {
        c.name: pd.Series(pd.NA, index=found.index, dtype="string") for c in CUSTOMERS.columns
    }
    columns["source_id"] = found["source_id"].astype("string")
    out = pd.DataFrame({"source": found["source"].astype("string"), **columns})
    for stamp in ("created_at", "updated_at"):
        out[stamp] = pd.Series(pd.NaT, index=found.index, dtype="datetime64[us, UTC]")
    return out


def check_sources(raw: pd.DataFrame) -> None:
    """Fail, naming the source, when one carries no identifying field at all."""
    for source, part in raw.groupby("source"):
        present = [c for c in IDENTIFYING if c in part and part[c].notna().any()]
        if not present:
            raise IdentityInputError(
                f"source {source!r}: its customer records have none of the identifying fields "
                f"({', '.join(IDENTIFYING)}); map at least one in custintel.yaml"
            )


def normalise(raw: pd.DataFrame, cfg: IdentityConfig) -> pd.DataFrame:
    """The records with normalised key fields, sorted by (source, source_id), ``rid`` 0..n-1."""
    raw = raw.sort_values(["source", "source_id"], kind="stable").reset_index(drop=True)
    first, last = raw.get("first_name"), raw.get("last_name")
    if first is None or last is None or (first.isna().all() and "full_name" in raw):
        # A source that keeps the whole name in one column: the first word is the given name.
        full = nz.name(raw["full_name"]) if "full_name" in raw else pd.Series(pd.NA, raw.index)
        first = (
            full.str.split(" ").str[0]
            if first is None
            else first.fillna(full.str.split(" ").str[0])
        )
        last = (
            full.str.split(" ").str[-1]
            if last is None
            else last.fillna(full.str.split(" ").str[-1])
        )
    rec = pd.DataFrame(
        {
            "rid": range(len(raw)),
            "source": raw["source"].astype("string"),
            "source_id": raw["source_id"].astype("string"),
            "first_name": nz.name(first),
            "last_name": nz.name(last),
            "email": nz.email(raw["email"]),
            "email_canonical": nz.email_canonical(raw["email"]),
            "phone": nz.phone(raw["phone"], cfg.default_region),
            "loyalty_id": _optional(raw, "loyalty_id", nz.identifier),
            "national_id": _optional(raw, "national_id", nz.identifier),
            "account_number": _optional(raw, "account_number", nz.identifier),
            "birth_date": nz.birth_date(raw["birth_date"]),
            "postcode": nz.postcode(raw["postcode"]),
            "address": nz.address(raw["address"]),
            "city": _optional(raw, "city", nz.name),
            "region": _optional(raw, "region", nz.name),
            "created_at": raw.get("created_at"),
            "updated_at": raw.get("updated_at"),
        }
    )
    rec["name_group"] = nz.name_group(rec["first_name"])
    for col in KEY_FIELDS:
        rec[col] = rec[col].astype("string")
    return rec


def _optional(
    raw: pd.DataFrame, column: str, normalise: Callable[[pd.Series], pd.Series]
) -> pd.Series:
    """A normalised column, or all missing when the warehouse table predates it."""
    if column not in raw:
        return pd.Series(pd.NA, index=raw.index, dtype="string")
    return normalise(raw[column])


def empty_records(rec: pd.DataFrame) -> pd.Series:
    """Records with nothing to match on: every key field missing."""
    return rec[list(KEY_FIELDS)].isna().all(axis=1)


def fingerprints(latest: pd.DataFrame) -> pd.Series:
    """A 64-bit hash of each profile's content (every column but the loader's own), so a
    later run can tell new and changed profiles from the ones it has already linked."""
    columns = sorted(c for c in latest.columns if not c.startswith("_"))
    hashed = pd.util.hash_pandas_object(latest[columns], index=False).to_numpy()
    return pd.Series(hashed.view("int64"), index=latest.index, name="fingerprint")


def renumber(rec: pd.DataFrame) -> pd.DataFrame:
    """Records in (source, source_id) order with ``rid`` 0..n-1, as ``normalise`` gives."""
    out = rec.sort_values(["source", "source_id"], kind="stable").reset_index(drop=True)
    out["rid"] = range(len(out))
    return out


def record_key(source: pd.Series, source_id: pd.Series) -> pd.Index:
    """One string per profile, ``source`` and ``source_id`` joined by a unit separator.

    Held as Python objects on purpose: ``isin`` between two Arrow-backed string indexes
    of a million values each takes seconds in pandas, on objects a fraction of one."""
    joined = source.astype("str") + "\x1f" + source_id.astype("str")
    return pd.Index(joined.to_numpy(dtype=object), dtype=object)
