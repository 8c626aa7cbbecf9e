"""``custintel identity resolve``: source records -> persistent customer ids.

A full run: the latest version of every profile in ``clean.customers``; normalisation;
placeholder and shared key values removed; deterministic rules; Splink on the same
records; one clustering of both kinds of links with a guard against chains; ids carried
over from the previous run by overlap. Later runs are incremental (``incremental.py``):
only new and changed profiles are linked, against everything, with the saved model, and
only the customers they touch are re-clustered. A full run happens on the first run, on
``--full``, and when the identity settings changed. The linking runs in a private DuckDB
whatever the warehouse is (DuckDB or Spark), so both give the same customers.

Writes ``identity.customer_map``, ``identity.links``, ``identity.id_history``,
``identity.non_keys``, ``identity.contact_points``, ``identity.devices`` (cookies tied
to customers), the golden record ``customer.profile``, the state a later run builds on
(``identity.records``, ``identity.model``) and a lineage row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
from splink.internals.exceptions import SplinkException

from custintel.core.config import IdentityConfig, ProjectConfig
from custintel.core.lineage import now, record_lineage
from custintel.core.warehouse import Warehouse
from custintel.identity import clusters, ids, incremental, keys, linkage, plan, records, rules
from custintel.identity.golden import contact_points, golden_records
from custintel.identity.stitch import devices

SCHEMA = "identity"
WEIGHT_COLUMNS = ("w_prior", *(f"w_{c}" for c in linkage.COMPARED))


@dataclass
class ResolveResult:
    """What a resolve did, for the CLI, the run log and the report."""

    mode: str = "full"
    mode_reason: str = ""
    records: int = 0
    delta_records: int = 0
    reclustered_records: int = 0
    customers: int = 0
    empty_records: int = 0
    links: dict[str, int] = field(default_factory=dict)
    non_keys: int = 0
    created: int = 0
    merged: int = 0
    split: int = 0
    changed_records: int = 0
    probabilistic: str = ""
    notes: list[str] = field(default_factory=list)
    plan: dict[str, object] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Linked:
    """The links and clusters of a set of records (all of them, or the touched ones)."""

    rec: pd.DataFrame
    non_keys: pd.DataFrame
    links: pd.DataFrame
    """Every link of the project after this run (rids of ``rec``)."""
    scope: pd.Series
    """Mask over ``rec``: the records whose customer was worked out again this run."""
    label: pd.Series
    """Cluster label of each record in scope, by rid."""
    status: str
    model: str | None
    touched_ids: set[str] = field(default_factory=set)
    relinked: pd.Series | None = None
    """Incremental runs: mask over ``rec`` of the records linked again this run."""
    new_links: pd.DataFrame | None = None
    gone: list[str] = field(default_factory=list)
    """Incremental runs: ``source:source_id`` of stored records no longer in the source."""
    notes: list[str] = field(default_factory=list)
    """Full runs: fields left out, rules dropped, training fallbacks, each with its reason."""
    plan: dict[str, object] = field(default_factory=dict)
    """Full runs: what was compared, blocked and trained on."""


def settings_hash(cfg: IdentityConfig) -> str:
    """Identity settings fingerprint: a later run may reuse links only under the same."""
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]


def _previous(wh: Warehouse) -> tuple[pd.DataFrame, int]:
    """The last customer map and the next free id number."""
    if not wh.exists(SCHEMA, "customer_map"):
        return pd.DataFrame(columns=["source", "source_id", "customer_id", "first_seen"]), 1
    previous = wh.table(SCHEMA, "customer_map").execute()
    used = [previous.customer_id]
    if wh.exists(SCHEMA, "id_history"):
        used.append(wh.table(SCHEMA, "id_history").customer_id.execute())
    numbers = pd.concat(used).astype("string").str.replace(r"\D", "", regex=True)
    highest = pd.to_numeric(numbers, errors="coerce").max(skipna=True)
    next_number = int(highest) + 1 if pd.notna(highest) else 1
    return previous, next_number


def _link_full(rec: pd.DataFrame, icfg: IdentityConfig) -> Linked:
    non_keys = keys.placeholders(rec, icfg)
    usable = keys.blank_non_keys(rec, non_keys)
    links = rules.deterministic_links(_loaded(usable), "records", icfg.rules, icfg.link_only)
    links["match_weight"] = float("nan")
    links["match_probability"] = 1.0
    model = None
    chosen = plan.choose(usable, icfg)
    notes = list(chosen.notes)
    if not icfg.probabilistic:
        status = "off in the configuration"
    elif len(usable) < icfg.min_records_probabilistic:
        status = f"skipped: {len(usable)} profiles, fewer than {icfg.min_records_probabilistic}"
    else:
        try:
            linker, _, training = linkage.train(usable, chosen, icfg)
        except SplinkException as exc:  # e.g. no field to compare
            status = f"skipped: Splink could not be trained ({linkage.first_sentence(exc)})"
        else:
            scored = linkage.probabilistic_links(linker, icfg)
            if icfg.link_only:
                scored = _across_sources(scored, rec)
            links, added = _add(links, scored)
            model = linkage.model_json(linker)
            notes += training.notes
            trained = "; ".join(training.trained) or "nothing (default m-probabilities)"
            status = (
                f"{added} links above match weight {icfg.threshold_match_weight}; compared "
                f"{', '.join(chosen.compared)}; EM trained on {trained}"
            )
    db = linkage.DuckDBAPI(duckdb.connect())
    if icfg.link_only:
        label = clusters.one_per_source(rec[["rid", "source"]], links)
    else:
        label = clusters.cluster(rec["rid"], links, icfg, db)
    scope = pd.Series(True, index=rec.index)
    linked = Linked(rec, non_keys, links, scope, label, status, model)
    linked.notes = notes
    linked.plan = chosen.as_dict()
    return linked


def _across_sources(scored: pd.DataFrame, rec: pd.DataFrame) -> pd.DataFrame:
    """Link-only mode: the pairs whose two records come from different sources."""
    source = rec.set_index("rid")["source"]
    differ = source.reindex(scored.rid_l).to_numpy() != source.reindex(scored.rid_r).to_numpy()
    return scored[differ].reset_index(drop=True)


def _link_delta(
    rec: pd.DataFrame,
    is_new: pd.Series,
    state: dict[str, object],
    previous: pd.DataFrame,
    icfg: IdentityConfig,
) -> Linked:
    """Link the new and changed records against all (see ``incremental``)."""
    non_keys = keys.placeholders(rec, icfg)
    old_non_keys = state["non_keys"]
    fresh_values = non_keys.merge(old_non_keys[["field", "value"]], how="left", indicator=True)
    fresh_values = fresh_values[fresh_values["_merge"] == "left_only"]
    is_new = is_new | incremental.holding(rec, fresh_values)
    usable = keys.blank_non_keys(rec, non_keys).assign(is_new=is_new.to_numpy())
    new_links = rules.deterministic_links(
        _loaded(usable), "records", icfg.rules, icfg.link_only, new_only=True
    )
    new_links["match_weight"] = float("nan")
    new_links["match_probability"] = 1.0
    model = state["model"]
    status = "no saved model: rules only"
    if model and is_new.any():
        scored = linkage.links_to_new(usable, is_new, model, icfg)
        if icfg.link_only:
            scored = _across_sources(scored, rec)
        new_links, added = _add(new_links, scored)
        status = f"{added} links of new records above match weight {icfg.threshold_match_weight}"
    elif model:
        status = "nothing new to score"
    kept = incremental.kept_links(state["links"], rec, is_new)
    scope, touched_ids = incremental.touched(rec, is_new, new_links, previous)
    links = pd.concat([kept, new_links], ignore_index=True)
    inside = links.rid_l.isin(rec.rid[scope]) & links.rid_r.isin(rec.rid[scope])
    if icfg.link_only:
        label = clusters.one_per_source(rec.loc[scope.to_numpy(), ["rid", "source"]], links[inside])
    else:
        label = clusters.cluster(
            rec.rid[scope], links[inside], icfg, linkage.DuckDBAPI(duckdb.connect())
        )
    stored = state["records"]
    gone = ~records.record_key(stored.source, stored.source_id).isin(
        records.record_key(rec.source, rec.source_id)
    )
    linked = Linked(
        rec,
        non_keys,
        links,
        scope,
        label,
        status,
        model,
        touched_ids,
        relinked=is_new,
        new_links=new_links,
        gone=list(stored.source[gone] + ":" + stored.source_id[gone]),
    )
    linked.status += f"; {int(is_new.sum())} new or changed records linked"
    return linked


def _loaded(usable: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """A private DuckDB holding the records as a table ``records`` (copied once: each
    rule would otherwise scan the pandas frame again)."""
    con = duckdb.connect()
    needed = ["rid", "source", "first_name", "last_name", "name_group", *records.KEY_FIELDS]
    con.register("usable", usable[[c for c in usable.columns if c in needed or c == "is_new"]])
    con.execute("CREATE TABLE records AS SELECT * FROM usable")
    con.unregister("usable")
    return con


def _add(links: pd.DataFrame, scored: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rule links plus the probabilistic pairs the rules did not already find."""
    known = pd.MultiIndex.from_frame(links[["rid_l", "rid_r"]])
    fresh = ~pd.MultiIndex.from_frame(scored[["rid_l", "rid_r"]]).isin(known)
    return pd.concat([links, scored[fresh]], ignore_index=True), int(fresh.sum())


def _state(wh: Warehouse, icfg: IdentityConfig) -> tuple[dict[str, object] | None, str]:
    """What the last run left to build on, or None and why a full run is needed."""
    needed = ("records", "model", "links", "non_keys", "customer_map")
    if not wh.exists(SCHEMA, "customer_map"):
        return None, "first run"
    if not all(wh.exists(SCHEMA, t) for t in needed):
        return None, "no saved state from the last run"
    model = wh.table(SCHEMA, "model").execute()
    if model.settings_hash.iloc[-1] != settings_hash(icfg):
        return None, "identity settings changed"
    saved = model.model.iloc[-1]
    return {
        "model": None if pd.isna(saved) else str(saved),
        "model_records": int(model.records.iloc[-1]),
        "records": wh.table(SCHEMA, "records").execute(),
        "links": wh.table(SCHEMA, "links").execute(),
        "non_keys": wh.table(SCHEMA, "non_keys").execute(),
    }, ""


def resolve(wh: Warehouse, cfg: ProjectConfig, run_id: str, *, full: bool = False) -> ResolveResult:
    started = now()
    result = ResolveResult()
    icfg = cfg.identity
    has_profiles = wh.exists("clean", "customers")
    if has_profiles:
        table = wh.table("clean", "customers")
        # The loader's own columns (file, line, flags, extras) play no part in linking.
        raw = table.select([c for c in table.columns if not c.startswith("_")]).execute()
        records.check_sources(raw)
    else:
        raw = records.refs_as_profiles(wh)
    latest = records.latest_versions(raw)
    rows_in = len(raw)
    del raw  # a million raw rows need not stay in memory through the linking
    state, reason = (None, "--full") if full else _state(wh, icfg)
    if (
        state is not None
        and icfg.probabilistic
        and state["model_records"] < icfg.min_records_probabilistic <= len(latest)
    ):
        state, reason = None, "enough profiles now to train the probabilistic model"
    previous, next_number = _previous(wh)
    if state is None:
        rec = records.normalise(latest, icfg)
        rec["fingerprint"] = records.fingerprints(latest).to_numpy()
        del latest
        linked = _link_full(rec, icfg)
        result.mode, result.mode_reason = "full", reason
    else:
        rec, is_new = incremental.merge_records(latest, state["records"], icfg)
        linked = _link_delta(rec, is_new, state, previous, icfg)
        result.mode = "incremental"
        result.delta_records = int(is_new.sum())
    result.records = len(rec)
    result.reclustered_records = int(linked.scope.sum())
    result.empty_records = int(records.empty_records(rec).sum())
    result.probabilistic = linked.status
    result.notes = linked.notes
    result.plan = linked.plan
    if not has_profiles:
        result.probabilistic = (
            "no customer profiles: each customer_ref of the activity tables is one customer"
        )
        result.notes = []
    result.non_keys = len(linked.non_keys)
    result.links = linked.links.rule.value_counts().to_dict()
    _write(wh, cfg, run_id, linked, previous, next_number, result)
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
        rows_in=rows_in,
        rows_out=result.records,
    )
    return result


def _write(
    wh: Warehouse,
    cfg: ProjectConfig,
    run_id: str,
    linked: Linked,
    previous: pd.DataFrame,
    next_number: int,
    result: ResolveResult,
) -> None:
    """Ids for the records in scope, and every table patched where they changed."""
    icfg = cfg.identity
    rec, scope = linked.rec, linked.scope
    part = rec[scope.to_numpy()]
    in_scope = records.record_key(previous.source, previous.source_id).isin(
        records.record_key(part.source, part.source_id)
    )
    out_of_scope = previous[~in_scope & ~previous.customer_id.isin(linked.touched_ids)]
    customer, history, _ = ids.assign(
        part, linked.label, previous[in_scope], next_number, icfg.id_prefix
    )
    counts = history.event.value_counts()
    result.created = int(counts.get("created", 0))
    result.merged = int(counts.get("merged", 0))
    result.split = int(counts.get("split", 0))

    stamp = now()
    links = linked.links
    near = links[links.rid_l.isin(part.rid) | links.rid_r.isin(part.rid)]
    cmap = _customer_map(part, customer, near, previous[in_scope], stamp)
    result.changed_records = int((cmap.last_changed == stamp).sum()) if len(previous) else 0
    if len(out_of_scope):
        cmap = pd.concat([out_of_scope[cmap.columns], cmap], ignore_index=True)
    result.customers = int(cmap.customer_id.nunique())
    with_ids = part.assign(customer_id=customer.reindex(part.rid).to_numpy())
    golden = golden_records(with_ids, icfg.survivorship, icfg.source_priority)
    points = contact_points(with_ids, golden)
    non_keys = linked.non_keys.astype(
        {"field": "string", "value": "string", "records": "int64", "reason": "string"}
    )
    wh.ensure_schema(SCHEMA)
    wh.ensure_schema("customer")
    wh.put(SCHEMA, "non_keys", non_keys)
    if linked.relinked is None:
        wh.put(SCHEMA, "customer_map", cmap)
        wh.put(SCHEMA, "links", _links_table(rec, linked.links, run_id))
        wh.put("customer", "profile", golden)
        wh.put(SCHEMA, "contact_points", points)
        wh.put(SCHEMA, "records", rec.drop(columns="rid"))
    else:
        _patch(wh, linked, cmap.iloc[len(out_of_scope) :], golden, points, run_id)
    if scope.all():
        model = pd.DataFrame(
            {
                "run_id": [run_id],
                "trained_at": [stamp],
                "records": [len(rec)],
                "settings_hash": [settings_hash(icfg)],
                "model": pd.Series([linked.model], dtype="string"),
                "status": pd.Series([linked.status], dtype="string"),
                "notes": pd.Series([json.dumps(linked.notes)], dtype="string"),
                "plan": pd.Series([json.dumps(linked.plan)], dtype="string"),
            }
        )
        wh.put(SCHEMA, "model", model)
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


def _patch(
    wh: Warehouse,
    linked: Linked,
    cmap: pd.DataFrame,
    golden: pd.DataFrame,
    points: pd.DataFrame,
    run_id: str,
) -> None:
    """Incremental runs: replace only the rows of the touched customers and relinked
    records, instead of rewriting million-row tables."""
    rec, relinked = linked.rec, linked.relinked
    touched = pd.DataFrame({"customer_id": sorted(linked.touched_ids)}, dtype="string")
    again = rec[relinked.to_numpy()]
    keys = pd.DataFrame({"k": list(again.source + ":" + again.source_id) + linked.gone})
    wh.put(SCHEMA, "_touched", touched)
    wh.put(SCHEMA, "_relinked", keys.astype("string"))
    by_customer = f"customer_id IN (SELECT customer_id FROM {wh.qualified(SCHEMA, '_touched')})"
    relinked_keys = f"(SELECT k FROM {wh.qualified(SCHEMA, '_relinked')})"

    def key(suffix: str = "") -> str:
        return f"source{suffix} || ':' || source_id{suffix} IN {relinked_keys}"

    for schema, name, rows, where in (
        (SCHEMA, "customer_map", cmap, by_customer),
        ("customer", "profile", golden, by_customer),
        (SCHEMA, "contact_points", points, by_customer),
        (SCHEMA, "records", again.drop(columns="rid"), key()),
        (
            SCHEMA,
            "links",
            _links_table(rec, linked.new_links, run_id),
            f"{key('_l')} OR {key('_r')}",
        ),
    ):
        wh.delete_where(schema, name, where)
        if len(rows):
            wh.put(schema, name, rows[list(wh.table(schema, name).columns)], append=True)
    wh.drop(SCHEMA, "_touched")
    wh.drop(SCHEMA, "_relinked")


def _customer_map(
    rec: pd.DataFrame,
    customer: pd.Series,
    links: pd.DataFrame,
    previous: pd.DataFrame,
    stamp: datetime,
) -> pd.DataFrame:
    """One row per source record with its customer id and how it was linked."""
    # How a record joined its customer: its strongest link (rules count as certain; among
    # equals the first found). Sorted with numpy: a pandas sort of every link end is slow.
    rid = np.concatenate([links.rid_l.to_numpy("int64"), links.rid_r.to_numpy("int64")])
    prob = np.tile(links.match_probability.to_numpy("float64"), 2)
    rule = np.tile(links.rule.astype(str).to_numpy(), 2)
    order = np.lexsort((-prob, rid))
    first = np.r_[True, rid[order][1:] != rid[order][:-1]] if len(rid) else np.array([], bool)
    best = pd.DataFrame(
        {"rule": rule[order][first], "p": prob[order][first]}, index=rid[order][first]
    )
    out = pd.DataFrame(
        {
            "source": rec.source.to_numpy(),
            "source_id": rec.source_id.to_numpy(),
            "customer_id": customer.reindex(rec.rid).to_numpy(),
            "linked_by": best.rule.reindex(rec.rid).fillna("alone").to_numpy(),
            "match_probability": best.p.reindex(rec.rid).to_numpy(),
        }
    )
    before = previous.reindex(columns=["customer_id", "first_seen"])
    before["last_changed"] = (
        previous["last_changed"] if "last_changed" in previous else before["first_seen"]
    )
    before.index = records.record_key(previous.source, previous.source_id)
    old = before.reindex(records.record_key(out.source, out.source_id))
    unchanged = old.customer_id.to_numpy() == out.customer_id.to_numpy()
    # Kept as datetime Series throughout: a tz-aware column through numpy becomes a
    # million Timestamp objects.
    # (A Spark warehouse gives the times back without a zone; they are UTC.)
    first_seen = pd.to_datetime(old.first_seen, utc=True).astype("datetime64[us, UTC]")
    last_changed = pd.to_datetime(old.last_changed, utc=True).astype("datetime64[us, UTC]")
    first_seen = first_seen.fillna(stamp)
    last_changed = last_changed.where(unchanged, stamp)
    out["first_seen"] = first_seen.set_axis(out.index)
    out["last_changed"] = last_changed.set_axis(out.index)
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
