"""Incremental resolve: link only what is new or changed since the last run.

A resolve keeps its normalised records with a fingerprint of each profile
(``identity.records``), its links (``identity.links``) and its trained Splink model
(``identity.model``). The next run

1. normalises only the profiles that are new or whose content changed (the *delta*), and
   reuses the stored normalised form of the rest;
2. links the delta to every record: the deterministic rules join the delta to all, and
   the saved Splink model scores only the delta's blocks (no training, no all-pairs);
3. keeps the stored links among unchanged records;
4. re-clusters only the customers the delta touches (the previous customers of changed
   records and of every record a new link reaches), so every other customer, and its id,
   is left exactly as it was.

A value that has newly become a non-key (shared by too many records) puts the records
holding it into the delta as well, so their links through it are dropped and redone.
Everything here is pure (frames in, frames out); ``resolve`` does the reading and writing.
"""

from __future__ import annotations

import pandas as pd

from custintel.core.config import IdentityConfig
from custintel.identity import records

KEY = ["source", "source_id"]


def merge_records(
    latest: pd.DataFrame, stored: pd.DataFrame, cfg: IdentityConfig
) -> tuple[pd.DataFrame, pd.Series]:
    """All records (normalised, renumbered) and the mask of the new or changed ones.

    ``latest``: the latest raw version of every profile; ``stored``: the normalised
    records of the last run with their ``fingerprint``."""
    fingerprint = records.fingerprints(latest).to_numpy()
    key = _key(latest)
    old = pd.Series(stored.fingerprint.to_numpy(), index=_key(stored))
    changed = old.reindex(key).to_numpy() != fingerprint
    kept = stored[old.index.isin(key[~changed])]
    parts = [kept]
    if changed.any():
        fresh = records.normalise(latest[changed], cfg).drop(columns="rid")
        by_key = pd.Series(fingerprint[changed], index=key[changed])
        fresh["fingerprint"] = by_key.reindex(_key(fresh)).to_numpy()
        parts.append(fresh)
    merged = records.renumber(pd.concat(parts, ignore_index=True))
    for col in (*KEY, *records.KEY_FIELDS, "name_group", "city"):
        merged[col] = merged[col].astype("string")
    is_new = pd.Series(_key(merged).isin(key[changed]), index=merged.index)
    return merged, is_new


def _key(frame: pd.DataFrame, suffix: str = "") -> pd.Index:
    return records.record_key(frame[f"source{suffix}"], frame[f"source_id{suffix}"])


def holding(rec: pd.DataFrame, values: pd.DataFrame) -> pd.Series:
    """Mask of the records that hold any of ``values`` (field, value) in its field."""
    mask = pd.Series(False, index=rec.index)
    for field, part in values.groupby("field"):
        if field in rec:
            mask |= rec[field].isin(part["value"]).fillna(False).to_numpy()
    return mask


def kept_links(stored: pd.DataFrame, rec: pd.DataFrame, is_new: pd.Series) -> pd.DataFrame:
    """The stored links between two records that still exist and are not being relinked,
    by their current ``rid``."""
    rid = pd.Series(rec.rid.to_numpy(), index=_key(rec))
    left = rid.reindex(_key(stored, "_l")).to_numpy()
    right = rid.reindex(_key(stored, "_r")).to_numpy()
    out = stored.drop(
        columns=["source_l", "source_id_l", "source_r", "source_id_r", "run_id"]
    ).assign(rid_l=left, rid_r=right)
    out = out.dropna(subset=["rid_l", "rid_r"])
    new_rids = rec.rid[is_new.to_numpy()]
    out = out[~out.rid_l.isin(new_rids) & ~out.rid_r.isin(new_rids)]
    return out.astype({"rid_l": "int64", "rid_r": "int64"}).reset_index(drop=True)


def touched(
    rec: pd.DataFrame, is_new: pd.Series, new_links: pd.DataFrame, previous: pd.DataFrame
) -> tuple[pd.Series, set[str]]:
    """The records to re-cluster (mask) and the previous customer ids they come from.

    A customer is touched when one of its records changed, disappeared, or is reached by
    a new link; all of its records are re-clustered together with the delta."""
    before = pd.Series(previous.customer_id.to_numpy(), index=_key(previous))
    old_id = pd.Series(before.reindex(_key(rec)).to_numpy(), index=rec.rid.to_numpy())
    ends = pd.concat([new_links.rid_l, new_links.rid_r]).unique()
    ids = set(old_id[is_new.to_numpy()].dropna()) | set(old_id.reindex(ends).dropna())
    gone = ~before.index.isin(_key(rec))
    ids |= set(previous.customer_id[gone])
    mask = is_new | pd.Series(old_id.isin(ids).to_numpy(), index=rec.index)
    return mask, ids
