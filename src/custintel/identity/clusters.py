"""From links to clusters: connected components, with a guard against chaining.

Components come from Splink's connected-components implementation (in SQL on the
resolve's DuckDB). A component larger than ``max_cluster_size`` is suspicious (one shared
value or a weak link chaining unrelated people); it is cut again using only the rule
links and the probabilistic links at or above ``strong_match_weight``.
"""

from __future__ import annotations

import pandas as pd
from splink import DuckDBAPI
from splink.clustering import cluster_pairwise_predictions_at_threshold

from custintel.core.config import IdentityConfig


def components(rids: pd.Series, links: pd.DataFrame, db: DuckDBAPI) -> pd.Series:
    """Cluster label (the smallest rid in the cluster) of every rid."""
    nodes = pd.DataFrame({"rid": rids.astype("int64").to_numpy()})
    edges = links[["rid_l", "rid_r"]].astype("int64")
    if edges.empty:
        return pd.Series(nodes.rid.to_numpy(), index=nodes.rid.to_numpy())
    out = cluster_pairwise_predictions_at_threshold(
        nodes, edges, db, node_id_column_name="rid"
    ).as_pandas_dataframe()
    label = out.groupby("cluster_id").rid.transform("min")
    return pd.Series(label.to_numpy(), index=out.rid.astype("int64").to_numpy()).sort_index()


def cluster(rids: pd.Series, links: pd.DataFrame, cfg: IdentityConfig, db: DuckDBAPI) -> pd.Series:
    """Components of all links, big ones re-cut with only the strong links."""
    label = components(rids, links, db)
    size = label.map(label.value_counts())
    big = label.index[size > cfg.max_cluster_size]
    if len(big) == 0:
        return label
    strong = links[
        (links.rule != "probabilistic") | (links.match_weight >= cfg.strong_match_weight)
    ]
    inside = strong.rid_l.isin(big) & strong.rid_r.isin(big)
    recut = components(pd.Series(big), strong[inside], db)
    label.loc[recut.index] = recut.to_numpy()
    return label


def one_per_source(rec: pd.DataFrame, links: pd.DataFrame) -> pd.Series:
    """Link-only clusters: each source is already deduplicated, so a customer holds at
    most one record of each. Links are taken strongest first (rules, then by match
    weight) and two clusters join only when they share no source; a weaker rival link
    is left out, which is what a one-to-one assignment between sources asks for.

    Written by hand: Splink's clustering has no such constraint, and a greedy pass over
    the few links of already deduplicated sources is small."""
    parent = {int(r): int(r) for r in rec["rid"]}
    sources = {int(r): {s} for r, s in zip(rec["rid"], rec["source"], strict=True)}

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    order = links.assign(
        _rule=(links["rule"] == "probabilistic").astype(int),
        _w=links["match_weight"].fillna(float("inf")),
    ).sort_values(["_rule", "_w", "rid_l", "rid_r"], ascending=[True, False, True, True])
    for left, right in zip(order["rid_l"], order["rid_r"], strict=True):
        a, b = root(int(left)), root(int(right))
        if a == b or sources[a] & sources[b]:
            continue
        low, high = min(a, b), max(a, b)
        parent[high] = low
        sources[low] |= sources.pop(high)
    label = {r: root(r) for r in parent}
    return pd.Series(label, dtype="int64").sort_index()
