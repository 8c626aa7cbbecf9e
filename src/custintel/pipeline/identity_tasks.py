"""Identity tasks of a project: resolve, explain a customer or a pair, summarise."""

from __future__ import annotations

import json
from typing import Any

import ibis
import pandas as pd

from custintel.core.errors import StageError
from custintel.core.lineage import new_run_id
from custintel.identity.explain import explain_pair
from custintel.identity.linkage import tf_columns
from custintel.identity.records import latest_versions
from custintel.identity.resolve import ResolveResult, resolve
from custintel.pipeline.parts import Progress, ProjectParts, StageResult


def _weight_examples(links: Any) -> list[dict[str, Any]]:
    """The weakest accepted probabilistic link and a typical one, with each part."""
    prob = links.filter(links.rule == "probabilistic")
    if "w_prior" not in links.columns or int(prob.count().execute()) == 0:
        return []
    frame = prob.order_by("match_weight").execute()
    picks = {"weakest accepted link": frame.iloc[0], "typical link": frame.iloc[len(frame) // 2]}
    parts = [c for c in frame.columns if c.startswith("w_")]
    return [
        {
            "title": f"{title}: {row.source_l}:{row.source_id_l} and {row.source_r}:{row.source_id_r}",
            "parts": [(c[2:], float(row[c])) for c in parts],
            "match_weight": float(row.match_weight),
        }
        for title, row in picks.items()
    ]


class IdentityTasks(ProjectParts):
    """Identity methods of :class:`~custintel.pipeline.project.Project`."""

    def identity_resolve(self, *, run_id: str | None = None, full: bool = False) -> ResolveResult:
        """Link the customer profiles into customers with persistent ids: incrementally
        after the first run, everything again with ``full``."""
        return resolve(self.warehouse, self.config, run_id or new_run_id(), full=full)

    def identity_explain(self, customer_id: str) -> dict[str, Any]:
        """Why the profiles of ``customer_id`` are one customer: its profiles, and every
        link among them with the rule or each field's part of the match weight."""
        wh = self.warehouse
        if not wh.exists("identity", "customer_map"):
            raise StageError("identity: not resolved yet (run `custintel identity resolve`)")
        cmap = wh.table("identity", "customer_map")
        mine = cmap.filter(cmap.customer_id == customer_id).execute()
        if mine.empty:
            raise StageError(f"identity: no customer {customer_id!r}")
        profiles = wh.table("clean", "customers")
        cols = [
            "source",
            "source_id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "birth_date",
            "postcode",
        ]
        found = profiles.filter(profiles.source_id.isin(list(mine.source_id))).execute()
        found = found[
            found.set_index(["source", "source_id"]).index.isin(
                mine.set_index(["source", "source_id"]).index
            )
        ]
        found = latest_versions(found)
        links = wh.table("identity", "links")
        ids = list(mine.source_id)
        pairs = links.filter(links.source_id_l.isin(ids) & links.source_id_r.isin(ids)).execute()
        keys = set(zip(mine.source, mine.source_id, strict=True))
        inside = [
            (a, b) in keys and (c, d) in keys
            for a, b, c, d in zip(
                pairs.source_l, pairs.source_id_l, pairs.source_r, pairs.source_id_r, strict=True
            )
        ]
        pairs = pairs[inside]
        weights = [c for c in pairs.columns if c.startswith("w_")]
        return {
            "customer_id": customer_id,
            "profiles": [
                ["" if pd.isna(v) else str(v) for v in row]
                for row in found[[c for c in cols if c in found]].itertuples(index=False)
            ],
            "profile_columns": [c for c in cols if c in found],
            "links": [
                {
                    "left": f"{r.source_l}:{r.source_id_l}",
                    "right": f"{r.source_r}:{r.source_id_r}",
                    "rule": r.rule,
                    "match_weight": None
                    if pd.isna(r.match_weight)
                    else round(float(r.match_weight), 2),
                    "weights": {
                        w[2:]: round(float(getattr(r, w)), 2)
                        for w in weights
                        if not pd.isna(getattr(r, w))
                    },
                }
                for r in pairs.itertuples()
            ],
        }

    def identity_explain_pair(self, left: str, right: str) -> dict[str, Any]:
        """Why two profiles (``source:source_id`` each) are or are not one customer: the
        rules that hold, the model's score with every comparison's part, the guard."""
        wh = self.warehouse
        if not wh.exists("identity", "records"):
            raise StageError("identity: not resolved yet (run `custintel identity resolve`)")
        keys = []
        for ref in (left, right):
            source, sep, source_id = ref.partition(":")
            if not sep or not source or not source_id:
                raise StageError(f"identity: {ref!r} is not a profile (write source:source_id)")
            keys.append((source, source_id))
        stored = wh.table("identity", "records")
        found = []
        for source, source_id in keys:
            row = stored.filter(
                (stored.source == source) & (stored.source_id == source_id)
            ).execute()
            if row.empty:
                raise StageError(f"identity: no profile {source}:{source_id}")
            found.append(row)
        pair = pd.concat(found, ignore_index=True)
        model_table = wh.table("identity", "model").execute()
        model = model_table.model.iloc[-1]
        model = None if pd.isna(model) else str(model)
        frequency: dict[str, dict[str, float]] = {}
        if model:
            for column in tf_columns(json.loads(model)):
                values = list(pair[column].dropna().astype(str))
                col = stored[column]
                total = stored.filter(col.notnull()).count().execute()
                hits = stored.filter(col.isin(values))
                counts = hits.group_by(column).aggregate(n=hits.count()).execute()
                frequency[column] = {
                    str(v): n / total for v, n in zip(counts[column], counts.n, strict=True)
                }
        non_keys = wh.table("identity", "non_keys").execute()
        out = explain_pair(pair, non_keys, model, self.config.identity, frequency)
        cmap = wh.table("identity", "customer_map")
        ids = []
        for source, source_id in keys:
            hit = cmap.filter((cmap.source == source) & (cmap.source_id == source_id))
            ids.append(hit.customer_id.execute().iloc[0])
        profile_cols = ["first_name", "last_name", "email", "phone", "birth_date", "postcode"]
        profile_cols += [c for c in ("national_id", "address") if pair[c].notna().any()]
        status = model_table["status"].iloc[-1] if "status" in model_table else None
        notes = model_table["notes"].iloc[-1] if "notes" in model_table else None
        return {
            "left": left,
            "right": right,
            "model_status": None if pd.isna(status) else str(status),
            "model_notes": json.loads(notes) if isinstance(notes, str) else [],
            "customer_ids": ids,
            "same_customer": ids[0] == ids[1],
            "profiles": {
                ref: {
                    c: None if pd.isna(pair[c].iloc[i]) else str(pair[c].iloc[i])
                    for c in profile_cols
                }
                for i, ref in enumerate((left, right))
            },
            **out,
        }

    def identity_summary(self) -> dict[str, Any] | None:
        """Sizes, links and set-aside values of the last identity resolve (None before one)."""
        wh = self.warehouse
        if not wh.exists("identity", "customer_map"):
            return None
        cmap = wh.table("identity", "customer_map")
        per = cmap.group_by("customer_id").aggregate(
            records=cmap.count(), systems=cmap.source.nunique()
        )
        sizes = per.group_by("records").aggregate(customers=per.count()).order_by("records")
        systems = per.group_by("systems").aggregate(customers=per.count()).order_by("systems")
        links = wh.table("identity", "links")
        weights = links.filter(links.rule == "probabilistic").match_weight
        history = (
            wh.table("identity", "id_history").event.value_counts().execute()
            if wh.exists("identity", "id_history")
            else None
        )
        model = (
            wh.table("identity", "model").execute().iloc[-1]
            if wh.exists("identity", "model")
            else None
        )
        return {
            "records": int(cmap.count().execute()),
            "customers": int(cmap.customer_id.nunique().execute()),
            "last_full_run": None
            if model is None
            else {
                "at": str(model.trained_at)[:19],
                "records": int(model.records),
                "model": not pd.isna(model.model),
                "status": model.get("status") if isinstance(model.get("status"), str) else "",
                "notes": json.loads(model["notes"]) if isinstance(model.get("notes"), str) else [],
                "plan": json.loads(model["plan"]) if isinstance(model.get("plan"), str) else {},
            },
            "linked_by": cmap.linked_by.value_counts().execute().values.tolist(),
            "sizes": sizes.execute().values.tolist(),
            "systems": systems.execute().values.tolist(),
            "weights": [float(w) for w in weights.execute().dropna()],
            "non_keys": wh.table("identity", "non_keys")
            .order_by(ibis.desc("records"))
            .limit(20)
            .execute()
            .values.tolist(),
            "history": [] if history is None else history.values.tolist(),
            "examples": _weight_examples(links),
            "devices": (
                wh.table("identity", "devices").status.value_counts().execute().values.tolist()
                if wh.exists("identity", "devices")
                else []
            ),
        }


def run_stage(project: Any, run_id: str, progress: Progress | None) -> StageResult:
    """The ``identity`` stage of ``custintel run``."""
    r = project.identity_resolve(run_id=run_id)
    links = ", ".join(f"{k} {v}" for k, v in sorted(r.links.items()))
    message = (
        f"{r.mode} ({r.delta_records} new or changed); "
        f"{r.records} records -> {r.customers} customers ({r.created} new, "
        f"{r.merged} merged, {r.split} split); links: {links or 'none'}; "
        f"{r.non_keys} placeholder or shared values set aside"
    )
    return StageResult("identity", "ok", message, r.as_dict())
