"""Customer ids that persist across runs.

The clusters of a run are matched to the ids of the previous run by overlap: every old id
goes to the cluster holding most of its records. A cluster that receives several old ids
is a merge (the oldest id survives, the others are recorded as ``merged_into`` it); a
cluster that receives none gets a new id (a ``split`` from an old id when some of its
records had one). Ids are numbered in order of creation and never reused.
"""

from __future__ import annotations

import pandas as pd

from custintel.identity.records import record_key


def format_id(prefix: str, number: int) -> str:
    return f"{prefix}{number:08d}"


def assign(
    records: pd.DataFrame,
    label: pd.Series,
    previous: pd.DataFrame,
    next_number: int,
    prefix: str,
) -> tuple[pd.Series, pd.DataFrame, int]:
    """Ids for each record's cluster.

    ``records``: rid, source, source_id; ``label``: cluster of each rid; ``previous``:
    source, source_id, customer_id of the last run. Returns (customer id per rid, history
    events (customer_id, event, related_id), next free number).
    """
    frame = records[["rid", "source", "source_id"]].copy()
    frame["cluster"] = label.reindex(frame.rid).to_numpy()
    before = pd.Series(
        previous.customer_id.to_numpy(), index=record_key(previous.source, previous.source_id)
    )
    frame["customer_id"] = before.reindex(record_key(frame.source, frame.source_id)).to_numpy()
    old = frame.dropna(subset=["customer_id"])
    overlap = old.groupby(["customer_id", "cluster"]).size().rename("n").reset_index()
    # Each old id goes home to the cluster with most of its records (ties: smaller label).
    overlap = overlap.sort_values(["customer_id", "n", "cluster"], ascending=[True, False, True])
    home = overlap.drop_duplicates("customer_id")
    numbers = home.customer_id.astype("str").str.replace(r"\D", "", regex=True)
    home = home.assign(number=pd.to_numeric(numbers))
    keeper = home.sort_values("number").drop_duplicates("cluster")
    events = []
    # Compared as Python objects: isin between two large Arrow string columns is slow.
    merged = home[~home.customer_id.astype(object).isin(keeper.customer_id.astype(object))]
    kept_in = keeper.set_index("cluster").customer_id
    for row in merged.itertuples():
        events.append(
            {"customer_id": row.customer_id, "event": "merged", "related_id": kept_in[row.cluster]}
        )
    ids = kept_in.to_dict()
    clusters = frame.cluster.drop_duplicates().sort_values()
    came_from = old.groupby("cluster").customer_id.min()
    for c in clusters:
        if c in ids:
            continue
        new_id = format_id(prefix, next_number)
        next_number += 1
        ids[c] = new_id
        if c in came_from.index:
            events.append({"customer_id": new_id, "event": "split", "related_id": came_from[c]})
        else:
            events.append({"customer_id": new_id, "event": "created", "related_id": None})
    customer = frame.set_index("rid").cluster.map(ids)
    history = pd.DataFrame(events, columns=["customer_id", "event", "related_id"])
    return customer, history, next_number
