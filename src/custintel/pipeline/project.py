"""The front object: a project folder opened from its ``custintel.yaml``.

The CLI (and later the API) only parse input, call a :class:`Project` method and format
the result, so every interface behaves the same.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pandas as pd

from custintel import __version__
from custintel.core import registry
from custintel.core.config import (
    CONFIG_FILE,
    ProjectConfig,
    dump_config,
    load_config,
)
from custintel.core.errors import ConfigError, CustintelError, NotEnoughDataError, StageError
from custintel.core.lineage import append_ops, ensure_ops_tables, new_run_id, now
from custintel.core.warehouse import SCHEMAS, Warehouse
from custintel.features.build import (
    BuildResult,
    TrainingResult,
    build_features,
    build_training,
    check_as_of,
    default_as_of,
    events_for,
    params_for,
    record_projection,
    version_of,
)
from custintel.features.definitions import customer_features
from custintel.features.stability import stability
from custintel.identity.explain import explain_pair
from custintel.identity.linkage import tf_columns
from custintel.identity.records import latest_versions
from custintel.identity.resolve import ResolveResult, resolve
from custintel.ingest.loader import IngestSummary, Loader, Progress
from custintel.ingest.quality import quality_summary
from custintel.pipeline.clv_tasks import ClvTasks
from custintel.pipeline.model_tasks import CHAMPION, ModelTasks
from custintel.pipeline.segment_tasks import SegmentTasks


@dataclass
class StageResult:
    stage: str
    status: str  # ok | failed | skipped
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    run_id: str
    stages: list[StageResult]

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.stages)


def init_project(
    project_dir: Path, config: ProjectConfig | None = None, *, force: bool = False
) -> Path:
    """Write ``custintel.yaml`` (refusing to overwrite unless ``force``) and create the warehouse."""
    project_dir.mkdir(parents=True, exist_ok=True)
    path = project_dir / CONFIG_FILE
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists (use --force to overwrite)")
    config = config or ProjectConfig(name=project_dir.resolve().name)
    header = "# custintel project configuration: docs/configuration.md describes every key.\n"
    path.write_text(header + dump_config(config), encoding="utf-8")
    with Project.open(project_dir) as project:
        ensure_ops_tables(project.warehouse)
    return path


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


class Project(SegmentTasks, ModelTasks, ClvTasks):
    """A project folder: its config and (opened on first use) its warehouse."""

    def __init__(
        self, project_dir: Path, config: ProjectConfig, *, read_only: bool = False
    ) -> None:
        self.dir = Path(project_dir)
        self.config = config
        self.read_only = read_only
        self._warehouse: Warehouse | None = None

    @classmethod
    def open(cls, project_dir: Path | str = ".", *, read_only: bool = False) -> Project:
        """A project folder; ``read_only`` for commands that only look (status, quality,
        report, explain, list): nothing in the folder is written."""
        project_dir = Path(project_dir)
        return cls(project_dir, load_config(project_dir), read_only=read_only)

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            wc = self.config.warehouse
            self._warehouse = Warehouse.open(
                wc.url,
                self.dir,
                threads=wc.threads,
                memory_limit=wc.memory_limit,
                read_only=self.read_only,
            )
        return self._warehouse

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def reports_dir(self) -> Path:
        return self.dir / self.config.reports_dir

    # -- stages ------------------------------------------------------------------------------
    def ingest(
        self,
        sources: list[str] | None = None,
        *,
        run_id: str | None = None,
        progress: Progress | None = None,
        strict: bool | None = None,
    ) -> IngestSummary:
        loader = Loader(
            self.warehouse, self.config, self.dir, run_id=run_id or new_run_id(), progress=progress
        )
        return loader.run(sources, strict=strict)

    def identity_resolve(self, *, run_id: str | None = None, full: bool = False) -> ResolveResult:
        """Link the customer profiles into customers with persistent ids: incrementally
        after the first run, everything again with ``full``."""
        return resolve(self.warehouse, self.config, run_id or new_run_id(), full=full)

    def features_build(
        self,
        as_of: dt.date | None = None,
        *,
        run_id: str | None = None,
        projection: bool = False,
    ) -> BuildResult:
        """Every customer's features as of a date into ``features.customer``; a date after
        the data is refused unless ``projection`` (then recorded as one)."""
        wh = self.warehouse
        day = as_of or default_as_of(wh, self.config)
        run_id = run_id or new_run_id()
        last = check_as_of(wh, self.config, day, "features", projection=projection)
        result = build_features(wh, self.config, day, run_id)
        if last is not None:
            record_projection(wh, "features.customer", day, last, run_id)
        return result

    def features_training_set(
        self, label: str, snapshots: list[dt.date] | None = None, *, run_id: str | None = None
    ) -> TrainingResult:
        """``features.train_<label>``: features per snapshot with the label that followed."""
        return build_training(self.warehouse, self.config, label, snapshots, run_id or new_run_id())

    def features_frame(self, as_of: dt.date) -> pd.DataFrame:
        """The features as of a date: stored ones when built with this feature set, else
        computed now (nothing is written)."""
        wh = self.warehouse
        params = params_for(wh, self.config)
        _, version = version_of(params)
        if wh.exists("features", "customer"):
            t = wh.table("features", "customer")
            t = t.filter((t.as_of == ibis.literal(as_of)) & (t.feature_set_version == version))
            # through Arrow: ten times faster than Ibis's own conversion at a million rows
            stored = t.drop("feature_set_version").to_pyarrow().to_pandas()
            if len(stored):
                stored["as_of"] = pd.to_datetime(stored["as_of"]).astype("datetime64[s]")
                return stored
        events, _ = events_for(wh, self.config)
        return customer_features(events, as_of, params).execute()

    def features_stability(self, reference: dt.date, current: dt.date) -> dict[str, Any]:
        """PSI of every feature from ``reference`` to ``current`` (bins from the reference),
        stored in ``features.stability``."""
        if current <= reference:
            raise StageError(
                f"features: the current date {current} must come after the reference {reference}"
            )
        fs, version = version_of(params_for(self.warehouse, self.config))
        ref, cur = self.features_frame(reference), self.features_frame(current)
        if ref.empty:
            raise StageError(f"features: no customers existed before {reference}")
        table = stability(ref, cur, fs.names())
        stored = table.assign(
            bins=table.bins.map(json.dumps),
            ref_shares=table.ref_shares.map(json.dumps),
            cur_shares=table.cur_shares.map(json.dumps),
            reference=reference,
            current=current,
            version=version,
            computed_at=now(),
        )
        wh = self.warehouse
        if wh.exists("features", "stability"):
            wh.delete_where(
                "features",
                "stability",
                f"reference = DATE '{reference}' AND current = DATE '{current}'",
            )
        wh.put("features", "stability", stored, append=True)
        return {
            "reference": reference.isoformat(),
            "current": current.isoformat(),
            "customers_reference": len(ref),
            "customers_current": len(cur),
            "version": version,
            "features": table.to_dict(orient="records"),
        }

    def features_catalog(self) -> pd.DataFrame:
        """Every feature with its family, type, windows and business description."""
        fs, version = version_of(params_for(self.warehouse, self.config))
        return fs.catalog(version)

    def features_summary(self) -> dict[str, Any] | None:
        """What the report shows: builds, training tables and the last stability check."""
        wh = self.warehouse
        if not wh.exists("features", "customer"):
            return None
        t = wh.table("features", "customer")
        builds = t.group_by(["as_of", "feature_set_version"]).aggregate(customers=t.count())
        builds = builds.order_by("as_of").execute()
        latest = builds.as_of.max()
        last = t.filter(t.as_of == ibis.literal(pd.Timestamp(latest).date())).execute()
        catalog = (
            wh.table("features", "catalog").execute()
            if wh.exists("features", "catalog")
            else self.features_catalog()
        )
        training = []
        for name in wh.tables("features"):
            if name.startswith("train_"):
                tt = wh.table("features", name)
                per = tt.group_by("as_of").aggregate(rows=tt.count(), label_mean=tt.label.mean())
                training.append(
                    {"table": f"features.{name}", "snapshots": per.order_by("as_of").execute()}
                )
        stab = None
        if wh.exists("features", "stability"):
            st = wh.table("features", "stability").execute()
            pick = st.sort_values("computed_at").iloc[-1]
            stab = st[(st.reference == pick.reference) & (st.current == pick.current)]
            stab = stab.sort_values("psi", ascending=False)
        return {
            "builds": builds,
            "latest": last,
            "catalog": catalog,
            "training": training,
            "stability": stab,
        }

    # -- model artefacts ----------------------------------------------------------------
    @property
    def artifacts_dir(self) -> Path:
        return self.dir / self.config.artifacts_dir

    def _stage_functions(
        self, progress: Progress | None
    ) -> dict[str, Callable[[str], StageResult]]:
        def ingest(run_id: str) -> StageResult:
            summary = self.ingest(run_id=run_id, progress=progress)
            detail = summary.as_dict()
            if summary.failed:
                return StageResult(
                    "ingest", "failed", "; ".join(r.message for r in summary.failed), detail
                )
            counts = (
                f"{detail['files_loaded']} loaded, {detail['files_skipped']} unchanged; "
                f"{detail['rows_in']} rows in = {detail['rows_clean']} clean + "
                f"{detail['rows_quarantined']} quarantined + {detail['rows_duplicate']} duplicates"
            )
            if summary.warnings:
                counts += "; warnings: " + "; ".join(summary.warnings)
            return StageResult("ingest", "ok", counts, detail)

        def identity(run_id: str) -> StageResult:
            r = self.identity_resolve(run_id=run_id)
            links = ", ".join(f"{k} {v}" for k, v in sorted(r.links.items()))
            message = (
                f"{r.mode} ({r.delta_records} new or changed); "
                f"{r.records} records -> {r.customers} customers ({r.created} new, "
                f"{r.merged} merged, {r.split} split); links: {links or 'none'}; "
                f"{r.non_keys} placeholder or shared values set aside"
            )
            return StageResult("identity", "ok", message, r.as_dict())

        def features(run_id: str) -> StageResult:
            b = self.features_build(run_id=run_id)
            parts = [
                f"{b.rows:,} customers x {b.features} features as of {b.as_of} "
                f"(version {b.version}, {b.seconds} s)" + (f"; {b.note}" if b.note else "")
            ]
            detail: dict[str, Any] = {"build": b.as_dict(), "training": []}
            fc = self.config.features
            if fc.snapshots:
                for label in fc.labels:
                    r = self.features_training_set(label, run_id=run_id)
                    detail["training"].append(r.as_dict())
                    parts.append(f"{r.table} {r.rows:,} rows")
                reference = max(fc.snapshots)
                if reference < dt.date.fromisoformat(b.as_of):
                    st = self.features_stability(reference, dt.date.fromisoformat(b.as_of))
                    flags = pd.Series([f["flag"] for f in st["features"]]).value_counts()
                    parts.append(
                        f"stability {st['reference']} -> {st['current']}: "
                        f"{int(flags.get('unstable', 0))} unstable, {int(flags.get('watch', 0))} to watch"
                    )
            return StageResult("features", "ok", "; ".join(parts), detail)

        def segments(run_id: str) -> StageResult:
            try:
                r = self.segment_fit(progress=progress)
            except NotEnoughDataError as exc:
                return StageResult("segments", "skipped", str(exc))
            parts = [
                ("unchanged " if r["unchanged"] else "")
                + f"v{r['version']} {r['method']} as of {r['as_of']}: k={r['k']} on "
                f"{r['clustered']:,} of {r['customers']:,} customers; "
                + ", ".join(f"{n} {c:,}" for n, c in r["segments"].items())
            ]
            detail: dict[str, Any] = {"fit": r}
            earlier = [d for d in self.config.features.snapshots if d.isoformat() < r["as_of"]]
            if earlier:
                c = self.segment_compare(max(earlier), dt.date.fromisoformat(r["as_of"]))
                detail["compare"] = {k: v for k, v in c.items() if k != "matrix"}
                parts.append(f"{c['stayed']:.0%} stayed in their segment since {c['from']}")
            return StageResult("segments", "ok", "; ".join(parts), detail)

        def models(run_id: str) -> StageResult:
            fc = self.config.features
            if not fc.snapshots:
                return StageResult(
                    "models",
                    "skipped",
                    "no features.snapshots, so no training tables to learn from",
                )
            parts, detail = [], []
            as_of = default_as_of(self.warehouse, self.config)
            for label in self.config.models.labels:
                if not self.warehouse.exists("features", f"train_{label}"):
                    self.features_training_set(label, run_id=run_id)
                r = self.model_train(label, progress=progress)
                t = r["test"]
                text = ("unchanged " if r["unchanged"] else "") + (
                    f"{label} v{r['version']} {r['algorithm']}: out-of-time AUC {t['auc']:.3f}, "
                    f"top-decile lift {t['top_decile_lift']:.2f}, ECE {t['ece']:.3f}"
                )
                try:
                    champion = registry.get(self.warehouse, label, alias=CHAMPION).version
                except StageError:
                    champion = None
                if champion is None:
                    try:
                        self.model_promote(label, r["version"])
                        champion = r["version"]
                        text += "; promoted to champion"
                    except StageError as exc:
                        text += f"; {exc}"
                if champion is not None:
                    sc = self.score(label, as_of, version=champion, progress=progress)
                    text += f"; {sc['customers']:,} scored as of {sc['as_of']} by v{champion}"
                parts.append(text)
                detail.append(r)
            return StageResult("models", "ok", "; ".join(parts), {"models": detail})

        def clv(run_id: str) -> StageResult:
            as_of = default_as_of(self.warehouse, self.config)
            try:
                fit = self.clv_fit(as_of)
            except StageError as exc:
                return StageResult("clv", "skipped", str(exc))
            parts = [
                f"clv v{fit['version']} {fit['model']} + Gamma-Gamma on {fit['customers']:,} "
                f"customers ({fit['repeat_buyers']:,} repeat buyers)"
            ]
            check = None
            try:
                # half a year's holdout inside the observed past (the LightGBM
                # alternative learns from the half year before)
                check = self.clv_validate(
                    as_of - dt.timedelta(days=183), as_of - dt.timedelta(days=1)
                )
                m = check["models"][fit["model"]]
                parts.append(
                    f"holdout of the last half year: {m['predicted']:,.0f} predicted, "
                    f"{m['actual']:,.0f} actual ({m['aggregate_error']:+.1%})"
                )
            except StageError as exc:
                parts.append(f"no holdout check: {exc}")
            sc = self.score_clv(as_of)
            parts.append(
                f"{sc['customers']:,} valued as of {sc['as_of']}, mean CLV {sc['mean_clv']:,.2f}"
            )
            return StageResult("clv", "ok", "; ".join(parts), {"fit": fit, "validation": check})

        return {
            "ingest": ingest,
            "identity": identity,
            "features": features,
            "segments": segments,
            "models": models,
            "clv": clv,
        }

    def run(self, *, resume: bool = False, progress: Progress | None = None) -> RunResult:
        """Run every configured stage in order; ``resume`` continues the last failed run."""
        wh = self.warehouse
        ensure_ops_tables(wh)
        functions = self._stage_functions(progress)
        run_id, done = new_run_id(), set()
        if resume:
            last = self.last_run()
            if last and last["status"] == "failed":
                run_id = last["run_id"]
                done = {s["stage"] for s in last["stages"] if s["status"] == "ok"}
        results: list[StageResult] = []
        for stage in self.config.stages:
            if stage in done:
                results.append(StageResult(stage, "skipped", "done earlier in this run"))
                continue
            started = now()
            try:
                result = functions[stage](run_id)
            except CustintelError as exc:
                result = StageResult(stage, "failed", str(exc))
            append_ops(
                wh,
                "pipeline_runs",
                [
                    {
                        "run_id": run_id,
                        "stage": stage,
                        "status": result.status,
                        "started_at": started,
                        "finished_at": now(),
                        "message": result.message,
                        "code_version": __version__,
                        "config_hash": self.config.config_hash(),
                    }
                ],
            )
            results.append(result)
            if result.status == "failed":
                break
        return RunResult(run_id, results)

    def last_run(self) -> dict[str, Any] | None:
        ensure_ops_tables(self.warehouse)
        runs = self.warehouse.table("ops", "pipeline_runs").execute()
        if runs.empty:
            return None
        run_id = runs.sort_values("started_at").run_id.iloc[-1]
        rows = runs[runs.run_id == run_id].sort_values("started_at")
        latest = rows.groupby("stage", sort=False).tail(1)
        stages = [
            {"stage": r.stage, "status": r.status, "message": r.message}
            for r in latest.itertuples()
        ]
        status = "failed" if any(s["status"] == "failed" for s in stages) else "ok"
        return {"run_id": run_id, "status": status, "stages": stages}

    # -- looking -----------------------------------------------------------------------------
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

    def quality(self) -> dict[str, Any]:
        return quality_summary(self.warehouse)

    def status(self) -> dict[str, Any]:
        wh = self.warehouse
        if not wh.read_only:
            ensure_ops_tables(wh)
        tables = []
        for schema in SCHEMAS:
            if schema == "staging":
                continue
            for name in wh.tables(schema):
                tables.append({"table": f"{schema}.{name}", "rows": wh.count(schema, name)})
        runs = wh.table("ops", "ingest_runs").order_by("started_at").execute().tail(5)
        last_runs = [
            {
                "run_id": r.run_id,
                "started_at": r.started_at.isoformat(),
                "status": r.status,
                "files_loaded": int(r.files_loaded),
                "files_skipped": int(r.files_skipped),
                "files_failed": int(r.files_failed),
                "rows_in": int(r.rows_in),
                "reconciled": bool(r.reconciled),
            }
            for r in runs.itertuples()
        ]
        return {
            "project": str(self.dir),
            "warehouse": wh.url,
            "tables": tables,
            "ingest_runs": last_runs,
        }


__all__ = ["Project", "RunResult", "StageResult", "init_project"]
