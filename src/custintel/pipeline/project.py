"""The front object: a project folder opened from its ``custintel.yaml``.

The CLI (and later the API) only parse input, call a :class:`Project` method and format
the result, so every interface behaves the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import numpy as np
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
    default_as_of,
    events_for,
    params_for,
    version_of,
)
from custintel.features.definitions import customer_features
from custintel.features.stability import stability
from custintel.features.training import opted_out
from custintel.identity.explain import explain_pair
from custintel.identity.linkage import tf_columns
from custintel.identity.records import latest_versions
from custintel.identity.resolve import ResolveResult, resolve
from custintel.ingest.loader import IngestSummary, Loader, Progress
from custintel.ingest.quality import quality_summary
from custintel.models.compare import paired_bootstrap
from custintel.models.dataset import feature_frame
from custintel.models.dataset import prepare as prepare_dataset
from custintel.models.explain import contributions, dependence, reasons
from custintel.models.metrics import evaluate as evaluate_scores
from custintel.models.metrics import threshold_table
from custintel.models.train import train as train_model
from custintel.segments.fit import Progress as SegmentProgress
from custintel.segments.fit import data_hash, fit_segments
from custintel.segments.model import SegmentModel
from custintel.segments.validate import migration

SEGMENT_MODEL = "segments"
ACTIVE = "active"
CHAMPION = "champion"


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


class Project:
    """A project folder: its config and (opened on first use) its warehouse."""

    def __init__(self, project_dir: Path, config: ProjectConfig) -> None:
        self.dir = Path(project_dir)
        self.config = config
        self._warehouse: Warehouse | None = None

    @classmethod
    def open(cls, project_dir: Path | str = ".") -> Project:
        project_dir = Path(project_dir)
        return cls(project_dir, load_config(project_dir))

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            wc = self.config.warehouse
            self._warehouse = Warehouse.open(
                wc.url, self.dir, threads=wc.threads, memory_limit=wc.memory_limit
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
    ) -> IngestSummary:
        loader = Loader(
            self.warehouse, self.config, self.dir, run_id=run_id or new_run_id(), progress=progress
        )
        return loader.run(sources)

    def identity_resolve(self, *, run_id: str | None = None, full: bool = False) -> ResolveResult:
        """Link the customer profiles into customers with persistent ids: incrementally
        after the first run, everything again with ``full``."""
        if not self.warehouse.exists("clean", "customers"):
            raise StageError(
                "identity: no customer profiles yet (map a `customers` source and ingest)"
            )
        return resolve(self.warehouse, self.config, run_id or new_run_id(), full=full)

    def features_build(
        self, as_of: dt.date | None = None, *, run_id: str | None = None
    ) -> BuildResult:
        """Every customer's features as of a date into ``features.customer``."""
        wh = self.warehouse
        day = as_of or default_as_of(wh, self.config)
        return build_features(wh, self.config, day, run_id or new_run_id())

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
            if int(t.count().execute()) > 0:
                return t.drop("feature_set_version").execute()
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

    # -- segments ------------------------------------------------------------------------
    @property
    def artifacts_dir(self) -> Path:
        return self.dir / self.config.artifacts_dir

    def _segment_frame(self, as_of: dt.date) -> pd.DataFrame:
        frame = self.features_frame(as_of)
        if frame.empty:
            raise StageError(f"segments: no customers existed before {as_of}")
        return frame

    def _write_assignments(self, out: pd.DataFrame, as_of: dt.date, version: int) -> None:
        wh = self.warehouse
        wh.ensure_schema("segments")
        rows = out.assign(as_of=as_of, model_version=version)[
            ["customer_id", "as_of", "segment_id", "segment_name", "model_version"]
        ]
        with wh.transaction():
            wh.delete_where(
                "segments",
                "assignments",
                f"as_of = DATE '{as_of}' AND model_version = {int(version)}",
            )
            wh.put("segments", "assignments", rows, append=True)

    def segment_fit(
        self,
        as_of: dt.date | None = None,
        *,
        method: str | None = None,
        k: int | None = None,
        force: bool = False,
        progress: SegmentProgress | None = None,
    ) -> dict[str, Any]:
        """Fit segments on the features as of a date, register the model as the active
        one and write every customer's segment to ``segments.assignments``. When the
        latest version was fitted on the same rows with the same settings it is kept
        (nothing new registered) unless ``force``."""
        wh = self.warehouse
        cfg = self.config.segments
        update: dict[str, Any] = {}
        if method is not None:
            update["method"] = method
        if k is not None:
            update["k"] = k
        cfg = cfg.model_validate({**cfg.model_dump(), **update}) if update else cfg
        day = as_of or default_as_of(wh, self.config)
        frame = self._segment_frame(day)
        _, fs_version = version_of(params_for(wh, self.config))
        same = None if force else self._same_segment_fit(frame, cfg, fs_version, day)
        if same is not None:
            return same
        fitted = fit_segments(
            frame,
            self.features_catalog(),
            cfg,
            version=fs_version,
            as_of=day.isoformat(),
            progress=progress,
        )
        s = fitted.summary
        metrics = {
            "k": s["k"],
            "customers": s["customers"],
            "clustered": s["clustered"],
            "surrogate_fidelity": s["surrogate"]["fidelity"],
        }
        if s.get("bootstrap"):
            metrics["bootstrap_ari"] = s["bootstrap"]["ari_mean"]
        chosen = [r for r in s.get("selection", []) if r["k"] == s["k"]]
        if chosen:
            metrics["silhouette"] = chosen[0]["silhouette"]
        entry = registry.register(
            wh,
            self.artifacts_dir,
            name=SEGMENT_MODEL,
            kind="segmentation",
            algorithm=cfg.method,
            model=fitted.model,
            params=cfg.model_dump(mode="json"),
            feature_set="customer",
            feature_set_version=fs_version,
            snapshots=[day.isoformat()],
            data_hash=fitted.data_hash,
            metrics=metrics,
            summary=s,
        )
        registry.set_alias(wh, SEGMENT_MODEL, ACTIVE, entry.version)
        self._write_assignments(fitted.assignments, day, entry.version)
        sizes = fitted.assignments.segment_name.value_counts()
        return {
            "version": entry.version,
            "as_of": day.isoformat(),
            "method": cfg.method,
            "k": s["k"],
            "reason": s["reason"],
            "customers": s["customers"],
            "clustered": s["clustered"],
            "metrics": metrics,
            "segments": {str(n): int(c) for n, c in sizes.items()},
            "merges": s.get("merges", []),
            "seconds": s.get("seconds", {}),
            "unchanged": False,
        }

    def _same_segment_fit(
        self, frame: pd.DataFrame, cfg: Any, fs_version: str, day: dt.date
    ) -> dict[str, Any] | None:
        """The result of the latest version when it was fitted on exactly these rows with
        these settings (a rerun of ``run`` registers nothing new), else None."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            return None
        try:
            last = registry.get(wh, SEGMENT_MODEL)
        except StageError:
            return None
        columns = (
            ["rfm_recency_score", "rfm_frequency_score"]
            if cfg.method == "rfm"
            else list(cfg.features)
        )
        if (
            last.params != json.loads(json.dumps(cfg.model_dump(mode="json"), sort_keys=True))
            or last.feature_set_version != fs_version
            or last.snapshots != [day.isoformat()]
            or last.data_hash != data_hash(frame, [c for c in columns if c in frame])
        ):
            return None
        registry.set_alias(wh, SEGMENT_MODEL, ACTIVE, last.version)
        summary = registry.summary(self.artifacts_dir, last)
        model = registry.load(self.artifacts_dir, last)
        out = model.assign(frame)
        self._write_assignments(out, day, last.version)
        sizes = out.segment_name.value_counts()
        return {
            "version": last.version,
            "as_of": day.isoformat(),
            "method": last.algorithm,
            "k": summary.get("k"),
            "reason": summary.get("reason", ""),
            "customers": summary.get("customers"),
            "clustered": summary.get("clustered"),
            "metrics": last.metrics,
            "segments": {str(n): int(c) for n, c in sizes.items()},
            "merges": summary.get("merges", []),
            "unchanged": True,
        }

    def segment_model(self, version: int | None = None) -> tuple[registry.Entry, SegmentModel]:
        """The active segment model (or a given version) and its registry entry."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError("segments: no segment model yet (run `custintel segment fit`)")
        entry = registry.get(wh, SEGMENT_MODEL, version=version, alias=None if version else ACTIVE)
        return entry, registry.load(self.artifacts_dir, entry)

    def segment_assign(self, as_of: dt.date, *, version: int | None = None) -> dict[str, Any]:
        """Place every customer as of a date with the fitted model (no refit)."""
        entry, model = self.segment_model(version)
        _, fs_version = version_of(params_for(self.warehouse, self.config))
        if model.feature_set_version != fs_version:
            raise StageError(
                f"segments: model v{entry.version} was fitted on feature set version "
                f"{model.feature_set_version}, the features are now version {fs_version}; "
                "refit with `custintel segment fit`"
            )
        out = model.assign(self._segment_frame(as_of))
        self._write_assignments(out, as_of, entry.version)
        sizes = out.segment_name.value_counts()
        return {
            "version": entry.version,
            "as_of": as_of.isoformat(),
            "customers": len(out),
            "segments": {str(n): int(c) for n, c in sizes.items()},
        }

    def _assignments(self, as_of: dt.date, version: int) -> pd.DataFrame:
        wh = self.warehouse
        if wh.exists("segments", "assignments"):
            t = wh.table("segments", "assignments")
            t = t.filter((t.as_of == ibis.literal(as_of)) & (t.model_version == version))
            found = t.execute()
            if len(found):
                return found
        self.segment_assign(as_of, version=version)
        return self._assignments(as_of, version)

    def segment_compare(
        self, start: dt.date, end: dt.date, *, version: int | None = None
    ) -> dict[str, Any]:
        """Customers moving between segments from one as-of date to a later one, with the
        same model (assigning either date first when needed); stored in
        ``segments.migration``."""
        if end <= start:
            raise StageError(f"segments: --to {end} must come after --from {start}")
        entry, _ = self.segment_model(version)
        before = self._assignments(start, entry.version)
        after = self._assignments(end, entry.version)
        matrix = migration(before, after)
        long = matrix.stack().rename("customers").reset_index()
        long.columns = ["segment_from", "segment_to", "customers"]
        long = long.assign(model_version=entry.version, from_date=start, to_date=end)
        wh = self.warehouse
        with wh.transaction():
            wh.delete_where(
                "segments",
                "migration",
                f"model_version = {entry.version} AND from_date = DATE '{start}' "
                f"AND to_date = DATE '{end}'",
            )
            wh.put("segments", "migration", long, append=True)
        both = before.merge(after, on="customer_id", suffixes=("_from", "_to"))
        stayed = float((both.segment_id_from == both.segment_id_to).mean()) if len(both) else 0.0
        share_from = before.segment_name.value_counts(normalize=True)
        share_to = after.segment_name.value_counts(normalize=True)
        shares = pd.concat([share_from, share_to], axis=1, keys=["from", "to"]).fillna(0.0)
        return {
            "version": entry.version,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "customers_from": len(before),
            "customers_to": len(after),
            "in_both": len(both),
            "stayed": stayed,
            "shares": {
                str(n): {"from": float(r["from"]), "to": float(r["to"])}
                for n, r in shares.iterrows()
            },
            "matrix": {
                str(a): {str(b): int(v) for b, v in row.items()} for a, row in matrix.iterrows()
            },
        }

    def segment_rules(self, fmt: str = "sql", *, version: int | None = None) -> str:
        """The segment rules a CRM can run: SQL ``CASE``, readable text or JSON."""
        entry, model = self.segment_model(version)
        if fmt == "sql":
            return (
                f"-- custintel segments v{entry.version} ({entry.algorithm}, fitted as of "
                f"{entry.snapshots[0]}); columns of features.customer\n{model.to_sql()}"
            )
        if fmt == "text":
            return "\n".join(model.to_text())
        if fmt == "json":
            s = registry.summary(self.artifacts_dir, entry)
            return json.dumps(
                {
                    "version": entry.version,
                    "rules": model.to_text(),
                    "sql": model.to_sql(),
                    "surrogate": s.get("surrogate"),
                },
                indent=2,
            )
        raise StageError(f"segments: unknown rules format {fmt!r} (sql, text or json)")

    def segments_summary(self) -> dict[str, Any] | None:
        """What the report shows: the active model's fit summary, sizes over time and the
        last migration."""
        wh = self.warehouse
        if not (wh.exists("models", "registry") and wh.exists("segments", "assignments")):
            return None
        try:
            entry = registry.get(wh, SEGMENT_MODEL, alias=ACTIVE)
        except StageError:
            return None
        a = wh.table("segments", "assignments")
        a = a.filter(a.model_version == entry.version)
        sizes = a.group_by(["as_of", "segment_name"]).aggregate(customers=a.count()).execute()
        last = None
        if wh.exists("segments", "migration"):
            m = wh.table("segments", "migration").execute()
            m = m[m.model_version == entry.version]
            if len(m):
                pick = m.sort_values(["to_date", "from_date"]).iloc[-1]
                last = m[(m.from_date == pick.from_date) & (m.to_date == pick.to_date)]
        return {
            "entry": entry,
            "summary": registry.summary(self.artifacts_dir, entry),
            "sizes": sizes,
            "migration": last,
            "versions": registry.versions(wh, SEGMENT_MODEL),
        }

    # -- propensity models ---------------------------------------------------------------
    def model_train(
        self, label: str, *, force: bool = False, progress: SegmentProgress | None = None
    ) -> dict[str, Any]:
        """Train, calibrate and evaluate out of time a model of ``features.train_<label>``,
        registered as a new version of the model named ``label``; when the latest version
        was trained on the same rows with the same settings it is kept unless ``force``."""
        wh = self.warehouse
        table = f"train_{label}"
        if not wh.exists("features", table):
            raise StageError(
                f"models: no training table features.{table}; build it with "
                f"`custintel features training-set --label {label}`"
            )
        frame = wh.table("features", table).execute()
        if frame.empty:
            raise StageError(f"models: features.{table} is empty")
        params = self.config.models.model_dump(mode="json")
        rows_hash = data_hash(frame, sorted(frame.columns))
        if not force:
            try:
                last: registry.Entry | None = registry.get(wh, label)
            except StageError:
                last = None
            if (
                last is not None
                and last.data_hash == rows_hash
                and last.params == json.loads(json.dumps(params, sort_keys=True))
            ):
                return self._train_result(last, registry.summary(self.artifacts_dir, last), True)
        trained = train_model(prepare_dataset(frame), label, self.config.models, progress=progress)
        s = trained.summary
        dates = [*s["split"]["train"], s["split"]["validation"], s["split"]["test"]]
        metrics = {k: v for k, v in s["test"].items() if k != "rows"}
        entry = registry.register(
            wh,
            self.artifacts_dir,
            name=label,
            kind="propensity",
            algorithm=s["algorithm"],
            model=trained.model,
            params=params,
            feature_set="customer",
            feature_set_version=str(frame.feature_set_version.iloc[0]),
            snapshots=dates,
            data_hash=rows_hash,
            metrics=metrics,
            summary=s,
        )
        return self._train_result(entry, s, False)

    def model_train_table(
        self,
        name: str,
        path: Path,
        target: str,
        *,
        time_column: str | None = None,
        progress: SegmentProgress | None = None,
    ) -> dict[str, Any]:
        """Train on a prepared table of your own (CSV or Parquet) with the same validation,
        calibration, evaluation and registry; by time when ``time_column`` is given."""
        path = Path(path)
        if not path.is_absolute():
            path = (Path.cwd() / path) if path.exists() else self.dir / path
        if not path.exists():
            raise StageError(f"models: no table at {path}")
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise StageError(
                f"models: {path.name}: read CSV or Parquet, not {suffix or 'no extension'}"
            )
        ds = prepare_dataset(frame, target=target, time=time_column, id_column="")
        trained = train_model(ds, name, self.config.models, progress=progress)
        s = {**trained.summary, "table": str(path.name), "target": target, "leaks": ds.leaks}
        split = s["split"]
        columns = ",".join(sorted(map(str, frame.columns)))
        entry = registry.register(
            self.warehouse,
            self.artifacts_dir,
            name=name,
            kind="propensity",
            algorithm=s["algorithm"],
            model=trained.model,
            params=self.config.models.model_dump(mode="json"),
            feature_set=f"table:{path.name}",
            feature_set_version=hashlib.sha256(columns.encode()).hexdigest()[:12],
            snapshots=[*split["train"], split["validation"], split["test"]],
            data_hash=data_hash(frame, sorted(frame.columns)),
            metrics={k: v for k, v in s["test"].items() if k != "rows"},
            summary=s,
        )
        return {**self._train_result(entry, s, False), "leaks": ds.leaks}

    @staticmethod
    def _train_result(entry: registry.Entry, s: dict[str, Any], unchanged: bool) -> dict[str, Any]:
        return {
            "name": entry.name,
            "version": entry.version,
            "unchanged": unchanged,
            "algorithm": s["algorithm"],
            "chosen_because": s["chosen_because"],
            "split": s["split"],
            "rows": s["rows"],
            "candidates": s["candidates"],
            "test": s["test"],
            "notes": s["notes"],
        }

    def _snapshot_rows(self, label: str, as_of: dt.date) -> pd.DataFrame:
        wh = self.warehouse
        table = f"train_{label}"
        if not wh.exists("features", table):
            raise StageError(f"models: no training table features.{table}")
        t = wh.table("features", table)
        rows = t.filter(t.as_of == ibis.literal(as_of)).execute()
        if rows.empty:
            have = ", ".join(str(d)[:10] for d in t.as_of.cast("string").to_pandas().unique())
            raise StageError(
                f"models: features.{table} has no rows as of {as_of} (it has {have}); "
                "add the date to the snapshots and rebuild it"
            )
        return rows

    def model_evaluate(self, label: str, version: int, as_of: dt.date) -> dict[str, Any]:
        """A version's figures on the rows of ``features.train_<label>`` as of a date, with
        a warning when the version learned from that date (then it is not out of time)."""
        entry = registry.get(self.warehouse, label, version)
        model = registry.load(self.artifacts_dir, entry)
        rows = self._snapshot_rows(label, as_of)
        p = model.predict_frame(rows)
        learned = as_of.isoformat() in entry.snapshots[:-1]
        return {
            "name": label,
            "version": version,
            "as_of": as_of.isoformat(),
            "out_of_time": not learned,
            "warning": (
                f"v{version} trained or was calibrated on {as_of}: these figures are not out of time"
                if learned
                else None
            ),
            "metrics": evaluate_scores(rows.label.to_numpy(), p),
        }

    def model_compare(self, label: str, challenger: int | None = None) -> dict[str, Any]:
        """Champion against a challenger (default: the latest other version) on the
        challenger's out-of-time snapshot, by a paired bootstrap of the AUC difference."""
        wh = self.warehouse
        try:
            champ = registry.get(wh, label, alias=CHAMPION)
        except StageError:
            raise StageError(f"models: {label} has no champion to compare with") from None
        if challenger is None:
            others = registry.versions(wh, label)
            others = others[others.version != champ.version]
            if others.empty:
                raise StageError(
                    f"models: {label} has no version besides the champion v{champ.version}"
                )
            challenger = int(others.version.max())
        chal = registry.get(wh, label, challenger)
        day = dt.date.fromisoformat(chal.snapshots[-1])
        if day.isoformat() in champ.snapshots[:-1]:
            raise StageError(
                f"models: the champion v{champ.version} learned from {day}, the challenger's "
                "test snapshot; they cannot be compared fairly there"
            )
        rows = self._snapshot_rows(label, day)
        a = registry.load(self.artifacts_dir, champ).predict_frame(rows)
        b = registry.load(self.artifacts_dir, chal).predict_frame(rows)
        result = paired_bootstrap(
            rows.label.to_numpy(),
            a,
            b,
            rounds=self.config.models.bootstrap_rounds,
            seed=self.config.models.seed,
        )
        return {
            "name": label,
            "champion": champ.version,
            "challenger": chal.version,
            "as_of": day.isoformat(),
            **result,
        }

    def model_promote(self, label: str, version: int) -> dict[str, Any]:
        """Make ``version`` the champion of ``label`` if its out-of-time figures meet every
        gate in ``models.gates`` (promoting an older version is a rollback)."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError(f"models: no model named {label!r} in the registry")
        entry = registry.get(wh, label, version)
        failed = [
            f"{metric} {entry.metrics.get(metric, float('nan')):.4f} < {least}"
            for metric, least in self.config.models.gates.items()
            if not entry.metrics.get(metric, float("-inf")) >= least
        ]
        if failed:
            raise StageError(
                f"models: {label} v{version} is not promoted: out of time "
                + ", ".join(failed)
                + " (models.gates)"
            )
        try:
            before: int | None = registry.get(wh, label, alias=CHAMPION).version
        except StageError:
            before = None
        comparison = None
        if before is not None and version > before:
            # a newer version replaces the champion only when it is shown better;
            # promoting an older version is a rollback and needs only the gates
            comparison = self.model_compare(label, version)
            if not comparison["better"]:
                raise StageError(
                    f"models: {label} v{version} is not promoted: against the champion "
                    f"v{before} on {comparison['as_of']} its AUC differs by "
                    f"{comparison['difference']:+.4f} (95 % interval {comparison['ci_low']:+.4f} "
                    f"to {comparison['ci_high']:+.4f}), not better"
                )
        registry.set_alias(wh, label, CHAMPION, version)
        return {
            "name": label,
            "champion": version,
            "previous": before,
            "metrics": entry.metrics,
            "comparison": comparison,
        }

    def score(
        self,
        label: str,
        as_of: dt.date,
        *,
        version: int | None = None,
        progress: SegmentProgress | None = None,
    ) -> dict[str, Any]:
        """``scores.<label>``: every eligible customer's score as of a date with its decile,
        tier and top three reasons, by the champion (or ``version``); scoring a date again
        with the same version replaces its rows."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError(f"models: no model named {label!r} in the registry")
        try:
            entry = registry.get(wh, label, version=version, alias=None if version else CHAMPION)
        except StageError as exc:
            if version is None and "no 'champion'" in str(exc):
                raise StageError(
                    f"models: {label} has no champion yet: promote a version "
                    f"(`custintel model promote {label} --version N`) or give --version"
                ) from None
            raise
        if entry.kind != "propensity":
            raise StageError(f"models: {label} is a {entry.kind} model, not a propensity model")
        model = registry.load(self.artifacts_dir, entry)
        _, fs_version = version_of(params_for(wh, self.config))
        if entry.feature_set_version != fs_version:
            raise StageError(
                f"models: {label} v{entry.version} was trained on feature set version "
                f"{entry.feature_set_version}, the features are now version {fs_version}; "
                "retrain it"
            )
        frame = self.features_frame(as_of)
        if frame.empty:
            raise StageError(f"models: no customers existed before {as_of}")
        events, _ = events_for(wh, self.config)
        excluded = set(opted_out(events, as_of).execute().customer_id)
        frame = frame[~frame.customer_id.isin(excluded)].reset_index(drop=True)
        catalog = self.features_catalog()
        words = dict(zip(catalog.name, catalog.description, strict=True))
        scores, why = [], []
        mc = self.config.models
        step = mc.chunk_rows
        approx = None
        if len(frame) > mc.exact_reasons_rows:
            # exact TreeSHAP for everyone would take minutes: tabulate it on a sample
            approx = dependence(
                model.members,
                feature_frame(frame, model.features, model.categories),
                seed=mc.seed,
            )
        for start in range(0, len(frame), step):
            X = feature_frame(frame.iloc[start : start + step], model.features, model.categories)
            scores.append(model.predict(X))
            pushes = approx.pushes(X) if approx is not None else contributions(model.members, X)
            why += ["[]"] * len(X) if pushes is None else reasons(pushes, X, words)
            if progress:
                progress(f"scoring {label}", min(start + step, len(frame)), len(frame))
        score = np.concatenate(scores) if scores else np.empty(0)
        rank = np.empty(len(score), dtype=int)
        rank[np.argsort(-score, kind="stable")] = np.arange(len(score))
        decile = rank * 10 // max(len(score), 1) + 1
        out = pd.DataFrame(
            {
                "customer_id": frame.customer_id.to_numpy(),
                "as_of": as_of,
                "score": score,
                "decile": decile.astype("int64"),
                "tier": np.where(decile <= 2, "high", np.where(decile <= 5, "medium", "low")),
                "reasons": why,
                "model_version": entry.version,
            }
        )
        wh.ensure_schema("scores")
        with wh.transaction():
            wh.delete_where(
                "scores", label, f"as_of = DATE '{as_of}' AND model_version = {entry.version}"
            )
            wh.put("scores", label, out, append=True)
        return {
            "name": label,
            "version": entry.version,
            "as_of": as_of.isoformat(),
            "customers": len(out),
            "opted_out": len(excluded),
            "mean_score": float(score.mean()) if len(score) else None,
            "reasons": "exact" if approx is None else "binned SHAP dependence",
            "reason_agreement": None if approx is None else approx.agreement,
            "table": f"scores.{label}",
        }

    def _propensity_entry(self, label: str, version: int | None) -> registry.Entry:
        """The given version, else the champion, else the latest."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError(f"models: no model named {label!r} in the registry")
        if version is not None:
            return registry.get(wh, label, version)
        try:
            return registry.get(wh, label, alias=CHAMPION)
        except StageError:
            return registry.get(wh, label)

    def model_threshold(
        self,
        label: str,
        *,
        cost: float | None = None,
        value: float | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """What contacting the top share of customers would cost and return, from the
        out-of-time test of a version (the champion by default)."""
        entry = self._propensity_entry(label, version)
        sample = registry.summary(self.artifacts_dir, entry).get("test_sample")
        if not sample:
            raise StageError(f"models: {label} v{entry.version} has no stored test scores")
        mc = self.config.models
        cost = mc.cost_per_contact if cost is None else cost
        value = mc.value_per_success if value is None else value
        table = threshold_table(
            np.array(sample["y"]), np.array(sample["p"]), cost=cost, value=value
        )
        return {
            "name": label,
            "version": entry.version,
            "cost_per_contact": cost,
            "value_per_success": value,
            "customers": len(sample["y"]),
            "rows": table.to_dict(orient="records"),
        }

    def models_summary(self) -> list[dict[str, Any]]:
        """What the report shows per propensity model: the champion (or latest) version's
        training summary, its threshold table and every version."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            return []
        versions = registry.versions(wh)
        versions = versions[versions.kind == "propensity"]
        out = []
        for name in sorted(versions.name.unique()):
            entry = self._propensity_entry(name, None)
            out.append(
                {
                    "entry": entry,
                    "summary": registry.summary(self.artifacts_dir, entry),
                    "threshold": self.model_threshold(name, version=entry.version),
                    "versions": versions[versions.name == name],
                }
            )
        return out

    def model_list(self) -> pd.DataFrame:
        """Every registered model version with its aliases and headline metrics."""
        return registry.versions(self.warehouse)

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

        return {
            "ingest": ingest,
            "identity": identity,
            "features": features,
            "segments": segments,
            "models": models,
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
        return {
            "left": left,
            "right": right,
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
