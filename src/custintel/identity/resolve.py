"""``custintel identity resolve``: source records -> persistent customer ids.

Steps: the latest version of every profile in ``clean.customers``; normalisation;
placeholder and shared key values removed; deterministic rules; Splink on the same
records; one clustering of both kinds of links with a guard against chains; ids carried
over from the previous run by overlap. The linking runs in a private DuckDB whatever the
warehouse is (DuckDB or Spark), so both give the same customers.

Writes ``identity.customer_map``, ``identity.links``, ``identity.id_history``,
``identity.non_keys``, ``identity.contact_points``, ``identity.devices`` (cookies tied
to customers) and the golden record ``customer.profile``, and a lineage row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb
import pandas as pd
from splink.internals.exceptions import SplinkException

from custintel.core.config import ProjectConfig
from custintel.core.lineage import now, record_lineage
from custintel.core.warehouse import Warehouse
from custintel.identity import clusters, ids, keys, linkage, records, rules
from custintel.identity.golden import contact_points, golden_records
from custintel.identity.stitch import devices

SCHEMA = "identity"
WEIGHT_COLUMNS = ("w_prior", *(f"w_{c}" for c in linkage.COMPARED))


@dataclass
class ResolveResult:
    """What a resolve did, for the CLI, the run log and the report."""

    records: int = 0
    customers: int = 0
    empty_records: int = 0
    links: dict[str, int] = field(default_factory=dict)
    non_keys: int = 0
    created: int = 0
    merged: int = 0
    split: int = 0
    changed_records: int = 0
    probabilistic: str = ""
    devices: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _previous(wh: Warehouse) -> tuple[pd.DataFrame, int]:
    """The last customer map and the next free id number."""
    if not wh.exists(SCHEMA, "customer_map"):
        return pd.DataFrame(columns=["source", "source_id", "customer_id", "first_seen"]), 1
    previous = wh.table(SCHEMA, "customer_map").execute()
    used = list(previous.customer_id)
    if wh.exists(SCHEMA, "id_history"):
        used += list(wh.table(SCHEMA, "id_history").customer_id.execute())
    next_number = max((ids.id_number(i) for i in used), default=0) + 1
    return previous, next_number


def link_all(
    rec: pd.DataFrame, cfg: ProjectConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, str]:
    """Non-keys, links, cluster labels of normalised records, and what the probabilistic
    step did (pure: no warehouse). Splink is skipped, and the reason given, when it is
    turned off or the profiles are too few to train it."""
    icfg = cfg.identity
    non_keys = keys.placeholders(rec, icfg)
    usable = keys.blank_non_keys(rec, non_keys)
    con = duckdb.connect()
    con.register("records", usable)
    links = rules.deterministic_links(con, "records", icfg.rules)
    links["match_weight"] = float("nan")
    links["match_probability"] = 1.0
    db = linkage.DuckDBAPI(duckdb.connect())
    if not icfg.probabilistic:
        status = "off in the configuration"
    elif len(usable) < icfg.min_records_probabilistic:
        status = f"skipped: {len(usable)} profiles, fewer than {icfg.min_records_probabilistic}"
    else:
        try:
            linker, db = linkage.train(usable, icfg)
        except SplinkException as exc:  # e.g. a training rule finds no pairs
            status = f"skipped: Splink could not be trained ({str(exc).split('.')[0]})"
        else:
            scored = linkage.probabilistic_links(linker, icfg)
            known = pd.MultiIndex.from_frame(links[["rid_l", "rid_r"]])
            fresh = ~pd.MultiIndex.from_frame(scored[["rid_l", "rid_r"]]).isin(known)
            links = pd.concat([links, scored[fresh]], ignore_index=True)
            status = f"{int(fresh.sum())} links above match weight {icfg.threshold_match_weight}"
    label = clusters.cluster(rec["rid"], links, icfg, db)
    return non_keys, links, label, status


def resolve(wh: Warehouse, cfg: ProjectConfig, run_id: str) -> ResolveResult:
    started = now()
    result = ResolveResult()
    raw = wh.table("clean", "customers").execute()
    records.check_sources(raw)
    rec = records.normalise(records.latest_versions(raw), cfg.identity)
    result.records = len(rec)
    result.empty_records = int(records.empty_records(rec).sum())
    non_keys, links, label, result.probabilistic = link_all(rec, cfg)
    result.non_keys = len(non_keys)
    result.links = links.rule.value_counts().to_dict()

    previous, next_number = _previous(wh)
    customer, history, _ = ids.assign(rec, label, previous, next_number, cfg.identity.id_prefix)
    result.customers = int(customer.nunique())
    counts = history.event.value_counts()
    result.created = int(counts.get("created", 0))
    result.merged = int(counts.get("merged", 0))
    result.split = int(counts.get("split", 0))

    stamp = now()
    cmap = _customer_map(rec, customer, links, previous, stamp)
    result.changed_records = int((cmap.last_changed == stamp).sum()) if len(previous) else 0
    wh.ensure_schema(SCHEMA)
    wh.put(SCHEMA, "customer_map", cmap)
    wh.put(SCHEMA, "links", _links_table(rec, links, run_id))
    with_ids = rec.assign(customer_id=customer.reindex(rec.rid).to_numpy())
    golden = golden_records(with_ids, cfg.identity.survivorship, cfg.identity.source_priority)
    wh.ensure_schema("customer")
    wh.put("customer", "profile", golden)
    wh.put(SCHEMA, "contact_points", contact_points(with_ids, golden))
    wh.put(
        SCHEMA,
        "non_keys",
        non_keys.astype(
            {"field": "string", "value": "string", "records": "int64", "reason": "string"}
        ),
    )
    if len(history):
        events = history.assign(run_id=run_id, at=stamp).astype({"related_id": "string"})
        wh.put(SCHEMA, "id_history", events, append=True)
    if wh.exists("clean", "web_events"):
        wh.replace(
            SCHEMA,
            "devices",
            devices(wh.table("clean", "web_events"), wh.table(SCHEMA, "customer_map")),
        )
        status = wh.table(SCHEMA, "devices").status.value_counts().execute()
        result.devices = dict(zip(status.iloc[:, 0], status.iloc[:, 1].astype(int), strict=True))
    result.seconds = round((now() - started).total_seconds(), 2)
    record_lineage(
        wh,
        run_id=run_id,
        stage="identity",
        source="customers",
        input="clean.customers",
        output="identity.customer_map",
        config_hash=cfg.config_hash(),
        started_at=started,
        rows_in=len(raw),
        rows_out=len(cmap),
    )
    return result


def _customer_map(
    rec: pd.DataFrame,
    customer: pd.Series,
    links: pd.DataFrame,
    previous: pd.DataFrame,
    stamp: datetime,
) -> pd.DataFrame:
    """One row per source record with its customer id and how it was linked."""
    ends = pd.concat(
        [
            links[["rid_l", "rule", "match_probability"]].rename(columns={"rid_l": "rid"}),
            links[["rid_r", "rule", "match_probability"]].rename(columns={"rid_r": "rid"}),
        ]
    )
    # How a record joined its customer: its strongest link (rules count as certain).
    ends = ends.sort_values(["rid", "match_probability"], ascending=[True, False])
    best = ends.drop_duplicates("rid").set_index("rid")
    out = pd.DataFrame(
        {
            "source": rec.source.to_numpy(),
            "source_id": rec.source_id.to_numpy(),
            "customer_id": customer.reindex(rec.rid).to_numpy(),
            "linked_by": best.rule.reindex(rec.rid).fillna("alone").to_numpy(),
            "match_probability": best.match_probability.reindex(rec.rid).to_numpy(),
        }
    )
    before = previous.set_index(["source", "source_id"])
    key = pd.MultiIndex.from_frame(out[["source", "source_id"]])
    old_id = before.customer_id.reindex(key).to_numpy() if len(before) else [None] * len(out)
    first_seen = before.first_seen.reindex(key).to_numpy() if len(before) else [pd.NaT] * len(out)
    old_changed = (
        before.last_changed.reindex(key).to_numpy() if "last_changed" in before else first_seen
    )
    unchanged = pd.Series(old_id).to_numpy() == out.customer_id.to_numpy()
    out["first_seen"] = pd.Series(first_seen, dtype="datetime64[us, UTC]").fillna(stamp).to_numpy()
    out["last_changed"] = (
        pd.Series(old_changed, dtype="datetime64[us, UTC]").where(unchanged, stamp).to_numpy()
    )
    return out


def _links_table(rec: pd.DataFrame, links: pd.DataFrame, run_id: str) -> pd.DataFrame:
    by_rid = rec.set_index("rid")[["source", "source_id"]]
    left = by_rid.reindex(links.rid_l).reset_index(drop=True)
    right = by_rid.reindex(links.rid_r).reset_index(drop=True)
    out = pd.DataFrame(
        {
            "source_l": left.source,
            "source_id_l": left.source_id,
            "source_r": right.source,
            "source_id_r": right.source_id,
            "rule": links.rule.astype("string").to_numpy(),
            "match_weight": links.match_weight.astype(float).to_numpy(),
            "match_probability": links.match_probability.astype(float).to_numpy(),
            "run_id": run_id,
        }
    )
    for col in WEIGHT_COLUMNS:
        out[col] = links[col].astype(float).to_numpy() if col in links else float("nan")
    return out.astype(
        {
            c: "string"
            for c in ("source_l", "source_id_l", "source_r", "source_id_r", "rule", "run_id")
        }
    )
